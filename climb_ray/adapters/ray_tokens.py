"""The tokens stage on Ray Data: a hash-chosen sample for the BPE tokenizer, and the tokenizing pass
that turns one chunk of corpus files into per-super-cluster shards (climb_ray.tokens does the maths)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from climb_ray.adapters.ray_data import read_documents
from climb_ray.config import CorpusConfig
from climb_ray.tokens import ShardWriter, cluster_name, encode_docs, hash_fraction

TOKENIZE_BATCH = 512
_TOKENIZERS: dict[str, object] = {}


def sample_training_texts(files: list[tuple[str, str]], corpus: CorpusConfig, n_docs: int, want: int,
                          seed: int) -> list[str]:
    """About `want` documents chosen by a hash of their id: the same sample in any read order."""
    fraction = min(1.0, 1.2 * want / max(n_docs, 1))

    def pick(batch: dict) -> dict:
        keys = np.array([hash_fraction(str(d), seed) for d in batch["doc_id"]])
        keep = keys < fraction
        return {"key": keys[keep], "text": batch["text"][keep]}

    ds = read_documents(files, corpus).map_batches(pick, batch_format="numpy")
    rows = [(k, str(t)) for b in ds.iter_batches(batch_format="numpy", batch_size=4096)
            for k, t in zip(b["key"], b["text"])]
    rows.sort(key=lambda r: r[0])
    return [t for _, t in rows[:want]]


def cached_tokenizer(json_ref):
    """The tokenizer whose JSON `json_ref` holds, built once per worker process."""
    key = json_ref.hex() if hasattr(json_ref, "hex") else str(id(json_ref))
    if key not in _TOKENIZERS:
        from tokenizers import Tokenizer

        _TOKENIZERS[key] = Tokenizer.from_str(ray.get(json_ref))
    return _TOKENIZERS[key]


def tokenize_chunk(files: list[tuple[str, str]], corpus: CorpusConfig, assignment: dict[str, int],
                   tokenizer_json: str, *, eot: int, dtype: np.dtype, out_dir: str, vocab_size: int = 0) -> dict:
    """Tokenize the documents of `files` into `<out_dir>/<cluster>.bin/.idx` (local folder), in
    file order; documents of pruned clusters (-1) are left out, and `<out_dir>/docs.parquet` (doc_id,
    super_cluster, n_tokens of every document kept: what the export plans with). Returns the counts.
    A token-ID corpus is not tokenized: its ids (checked against vocab_size) get the end-of-text id."""
    lookup_ref, tok_ref = ray.put(assignment), ray.put(tokenizer_json)
    dtype = np.dtype(dtype)

    def tokenize(batch: dict) -> pa.Table:
        lookup = ray.get(lookup_ref)
        supers = np.array([lookup.get(str(d), -1) for d in batch["doc_id"]], dtype=np.int32)
        keep = supers >= 0
        if "ids" in batch:
            docs = [np.append(np.asarray(ids, dtype=np.int64), eot) for ids, k in zip(batch["ids"], keep) if k]
        else:
            texts = [str(t) for t, k in zip(batch["text"], keep) if k]
            docs = encode_docs(cached_tokenizer(tok_ref), texts, eot, dtype) if texts else []
        lengths = np.array([len(d) for d in docs], dtype=np.int64)
        values = np.concatenate(docs) if docs else np.zeros(0, dtype)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int64())
        return pa.table({"doc_id": pa.array([str(d) for d, k in zip(batch["doc_id"], keep) if k], pa.string()),
                         "super_cluster": pa.array(supers[keep], pa.int32()),
                         "ids": pa.LargeListArray.from_arrays(offsets, pa.array(values))})

    ds = read_documents(files, corpus).map_batches(tokenize, batch_size=TOKENIZE_BATCH, batch_format="numpy")
    ds.context.execution_options.preserve_order = True  # shards in file order: the same bytes every run
    writer = ShardWriter(out_dir, dtype)
    docs = []
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        supers = batch.column("super_cluster").to_numpy()
        lists = batch.column("ids").combine_chunks()
        offsets, values = lists.offsets.to_numpy(), lists.values.to_numpy()
        if corpus.token_ids_field and len(values) and values.max() >= vocab_size:
            raise _outside_vocabulary(batch, offsets, values, vocab_size, corpus.token_ids_field)
        docs.append(pa.table({"doc_id": batch.column("doc_id"), "super_cluster": batch.column("super_cluster"),
                              "n_tokens": pa.array(np.diff(offsets), pa.int64())}))
        for s in np.unique(supers):
            rows = np.flatnonzero(supers == s)
            writer.add(cluster_name(int(s)), [values[offsets[r]:offsets[r + 1]] for r in rows])
    shards = writer.close()
    import os

    import pyarrow.parquet as pq

    schema = pa.schema([("doc_id", pa.string()), ("super_cluster", pa.int32()), ("n_tokens", pa.int64())])
    pq.write_table(pa.concat_tables(docs) if docs else schema.empty_table(), os.path.join(out_dir, "docs.parquet"))
    return {name: {"tokens": s.tokens, "documents": s.documents} for name, s in shards.items()}


def _outside_vocabulary(batch: pa.Table, offsets: np.ndarray, values: np.ndarray, vocab_size: int, field: str):
    from climb_ray.corpus import CorpusError

    row = int(np.searchsorted(offsets, int(np.argmax(values >= vocab_size)), side="right") - 1)
    doc = values[offsets[row]:offsets[row + 1]]
    return CorpusError(f"document {batch.column('doc_id')[row].as_py()!r} has token id {int(doc.max())} in "
                       f"corpus.token_ids_field={field!r}, outside the vocabulary of tokens.tokenizer "
                       f"({vocab_size} ids): were the ids made with another tokenizer?")
