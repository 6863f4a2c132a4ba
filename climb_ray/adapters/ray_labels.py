"""The cluster stage of a pre-clustered corpus on Ray Data: each document's label is its super-cluster.

One pass over the corpus writes the same assignments table the k-means path writes (doc_id, cluster,
super_cluster, quality, n_tokens, text_head), so the tokens and export stages read either alike.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from climb_ray.adapters.ray_data import HEAD_CHARS, read_documents
from climb_ray.config import CorpusConfig


HEAD_IDS = 256  # token ids decoded for the report's text head of a token-ID document


def write_label_assignments(files: list[tuple[str, str]], corpus: CorpusConfig, index_of: dict[str, int],
                            scorer: str, out_url: str, tokenizer_json: str | None = None) -> None:
    """Assignments of one chunk of files; `index_of` maps a label (as a string) to its super-cluster.
    n_tokens counts words of a text corpus (the tokens stage counts real tokens), ids of a token-ID
    one, whose text head (for the report only) is its first ids decoded with `tokenizer_json`."""
    ref, tok_ref = ray.put(index_of), ray.put(tokenizer_json) if tokenizer_json else None

    def label(batch: dict) -> pa.Table:
        from climb_ray.quality import load_scorer, score

        index = ray.get(ref)
        supers = np.array([index[str(v)] for v in batch["label"]], dtype=np.int32)
        if "text" in batch:
            texts = [str(t) for t in batch["text"]]
            n_tokens = np.array([len(t.split()) for t in texts], dtype=np.int64)
            quality = np.asarray(score(load_scorer(scorer), texts), dtype=np.float64)
            heads = [t[:HEAD_CHARS] for t in texts]
        else:
            n_tokens = np.array([len(ids) for ids in batch["ids"]], dtype=np.int64)
            quality, heads = np.full(len(supers), np.nan), _decoded_heads(tok_ref, batch["ids"])
        return pa.table({"doc_id": pa.array([str(d) for d in batch["doc_id"]], pa.string()),
                         "cluster": pa.array(supers, pa.int32()), "super_cluster": pa.array(supers, pa.int32()),
                         "quality": pa.array(quality, pa.float64()), "n_tokens": pa.array(n_tokens, pa.int64()),
                         "text_head": pa.array(heads, pa.string())})

    read_documents(files, corpus).map_batches(label, batch_format="numpy").write_parquet(out_url)


def _decoded_heads(tok_ref, ids) -> list[str]:
    from climb_ray.adapters.ray_tokens import cached_tokenizer

    if tok_ref is None:
        return [""] * len(ids)
    heads = cached_tokenizer(tok_ref).decode_batch([np.asarray(x[:HEAD_IDS]).tolist() for x in ids])
    return [h[:HEAD_CHARS] for h in heads]


def label_statistics(assignments_url: str, k: int):
    """Documents, tokens and quality per label, summed over the assignments."""
    from climb_ray.cluster import ClusterStats

    total = ClusterStats.empty(k)
    ds = ray.data.read_parquet(assignments_url, file_extensions=["parquet"]).select_columns(
        ["super_cluster", "n_tokens", "quality"])
    for batch in ds.iter_batches(batch_format="numpy", batch_size=65536):
        quality = np.nan_to_num(batch["quality"].astype(np.float64), nan=0.0)
        total.add(ClusterStats.of(batch["super_cluster"].astype(np.int64), batch["n_tokens"], quality, k))
    return total
