"""The export on Ray Data: read the corpus, give each chosen document its copies (climb_ray.export
decides how many), optionally tokenize them, order every row by its seeded key across clusters
(a distributed sort, spilled to disk by Ray when large) and stream the rows to the shard writer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from climb_ray.adapters.ray_data import read_documents
from climb_ray.config import CorpusConfig
from climb_ray.export import doc_key

ROWS_PER_BATCH = 1024  # rows handed to the writer at a time: fixed, so shard boundaries are too


def export_rows(files: list[tuple[str, str]], corpus: CorpusConfig, chosen: dict[str, tuple[str, int]], seed: int,
                tokenizer_json: str | None = None, eot: int = 0):
    """Batches (pyarrow) of text, cluster, doc_id[, ids] in final order. `chosen` maps a document id
    to (its cluster's name, how many copies go in); other documents are left out."""
    chosen_ref = ray.put(chosen)
    tok_ref = ray.put(tokenizer_json) if tokenizer_json else None

    def expand(batch: dict) -> pa.Table:
        chosen = ray.get(chosen_ref)
        column = "ids" if "ids" in batch else "text"  # a token-ID corpus has ids, not text
        rows = {"key": [], column: [], "cluster": [], "doc_id": []}
        for doc_id, value in zip(batch["doc_id"], batch[column]):
            doc_id = str(doc_id)
            cluster, times = chosen.get(doc_id, ("", 0))
            for copy in range(times):
                rows["key"].append(doc_key(doc_id, seed, copy))
                rows[column].append(str(value) if column == "text" else np.append(value, eot))
                rows["cluster"].append(cluster)
                rows["doc_id"].append(doc_id)
        table = pa.table({"key": pa.array(rows["key"], pa.float64()), "cluster": pa.array(rows["cluster"], pa.string()),
                          "doc_id": pa.array(rows["doc_id"], pa.string())})
        if column == "ids":
            return table.append_column("ids", _large_lists(rows["ids"]))
        table = table.append_column("text", pa.array(rows["text"], pa.string()))
        if tok_ref is not None:
            table = table.append_column("ids", _token_ids(tok_ref, rows["text"], eot))
        return table

    ds = read_documents(files, corpus).map_batches(expand, batch_size=256, batch_format="numpy")
    ds = ds.sort("key")
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=ROWS_PER_BATCH):
        yield batch.drop_columns(["key"])


_TOKENIZER: dict[str, object] = {}


def _token_ids(tok_ref, texts: list[str], eot: int) -> pa.Array:
    from tokenizers import Tokenizer

    if tok_ref.hex() not in _TOKENIZER:
        _TOKENIZER.clear()
        _TOKENIZER[tok_ref.hex()] = Tokenizer.from_str(ray.get(tok_ref))
    encodings = _TOKENIZER[tok_ref.hex()].encode_batch(texts, add_special_tokens=False) if texts else []
    return _large_lists([e.ids + [eot] for e in encodings])


def _large_lists(ids: list) -> pa.Array:
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = np.concatenate([np.array(x, dtype=np.int64) for x in ids]) if ids else np.zeros(0, np.int64)
    return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(values))
