"""The tokens stage on Ray Data: a hash-chosen sample for the BPE tokenizer, and the tokenizing pass in
which each task turns one corpus file into its per-super-cluster parts, written by the task itself
(climb_ray.tokens does the maths)."""

from __future__ import annotations

import itertools
import json
import posixpath

import numpy as np
import pyarrow as pa
import ray

from climb_ray.adapters.ray_data import read_documents
from climb_ray.config import CorpusConfig
from climb_ray.corpus import CorpusError, SkipCounts, iter_records
from climb_ray.export import doc_key, key_bins
from climb_ray.tokens import Part, PartWriter, cluster_name, encode_docs, hash_fraction

TOKENIZE_BATCH = 512
DOCS_SCHEMA = pa.schema([("doc_id", pa.string()), ("super_cluster", pa.int32()), ("n_tokens", pa.int64())])
_TOKENIZERS: dict[str, object] = {}
_LOOKUP: dict[tuple, dict[str, int]] = {}


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


def tokenize_files(items: list[dict], corpus: CorpusConfig, tokenizer_json: str, *, tokens_url: str, eot: int,
                   dtype: np.dtype, vocab_size: int = 0, sample: dict | None = None):
    """Each item (chunk, stem, file, name, assignments: the chunk's cluster/assignments URL) tokenized
    by one Ray task that writes its parts `<tokens_url>/<cluster>/<stem>.bin/.idx` and its document list
    `<tokens_url>/docs/<stem>.parquet` (doc_id, super_cluster, n_tokens) itself; yields one small row per
    item as it finishes (chunk, stem, documents kept, read: the item's "documents", parts: JSON
    [[prefix, tokens, documents], ...]).
    Documents of pruned clusters (-1) are left out, and with `sample` ({"seed", "bins": the last key
    bin per cluster}) those past their cluster's bin. A token-ID corpus is not tokenized: its ids
    (checked against vocab_size) get the end-of-text id."""
    if not items:
        return
    tok_ref = ray.put(tokenizer_json)
    dtype = np.dtype(dtype)

    def tokenize(item: dict) -> dict:
        try:
            parts = _tokenize_file(item, corpus, tok_ref, tokens_url, eot, dtype, vocab_size, sample)
        except CorpusError as err:  # returned as data: Ray would bury it in a task traceback
            return {"chunk": item["chunk"], "stem": item["stem"], "documents": 0, "read": 0, "parts": "[]",
                    "error": str(err)}
        return {"chunk": item["chunk"], "stem": item["stem"], "documents": sum(p.documents for p in parts),
                "read": item.get("documents", 0),
                "parts": json.dumps([[p.prefix, p.tokens, p.documents] for p in parts]), "error": ""}

    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items))).map(tokenize)
    for row in ds.iter_rows():
        if row["error"]:
            raise CorpusError(row["error"])
        yield {**row, "parts": [Part(*p) for p in json.loads(row["parts"])]}


def _tokenize_file(item: dict, corpus: CorpusConfig, tok_ref, tokens_url: str, eot: int, dtype: np.dtype,
                   vocab_size: int, sample: dict | None = None) -> list[Part]:
    """One corpus file's documents, by cluster, into its parts; the file's document list beside them."""
    import fsspec
    import pyarrow.parquet as pq

    fs, root = fsspec.core.url_to_fs(tokens_url)
    lookup = _assignments(item["assignments"])
    writer, rows = PartWriter(fs, root, item["stem"], dtype), []
    records = iter_records(item["file"], item["name"], corpus, SkipCounts())
    while batch := list(itertools.islice(records, TOKENIZE_BATCH)):
        supers = np.array([lookup.get(str(doc_id), -1) for doc_id, _, _ in batch], dtype=np.int32)
        if sample is not None:  # the sample: documents up to their cluster's last key bin
            keys = np.array([doc_key(str(doc_id), sample["seed"]) for doc_id, _, _ in batch], dtype=np.float64)
            last = np.asarray(sample["bins"], dtype=np.int64)[np.maximum(supers, 0)]
            supers = np.where(key_bins(keys) <= last, supers, -1).astype(np.int32)
        kept = [(str(doc_id), value, s) for (doc_id, value, _), s in zip(batch, supers) if s >= 0]
        if corpus.token_ids_field:
            docs = [np.append(np.asarray(ids, dtype=np.int64), eot) for _, ids, _ in kept]
            for (doc_id, _, _), doc in zip(kept, docs):
                if len(doc) and doc.max() >= vocab_size:
                    raise _outside_vocabulary(doc_id, doc, vocab_size, corpus.token_ids_field)
        else:
            texts = [str(text) for _, text, _ in kept]
            docs = encode_docs(cached_tokenizer(tok_ref), texts, eot, dtype) if texts else []
        clusters = np.array([s for _, _, s in kept], dtype=np.int32)
        for s in np.unique(clusters):
            writer.add(cluster_name(int(s)), [docs[r] for r in np.flatnonzero(clusters == s)])
        rows.append(pa.table({"doc_id": pa.array([d for d, _, _ in kept], pa.string()),
                              "super_cluster": pa.array(clusters, pa.int32()),
                              "n_tokens": pa.array([len(d) for d in docs], pa.int64())}))
    parts = writer.close()
    table = pa.concat_tables(rows) if rows else DOCS_SCHEMA.empty_table()
    fs.makedirs(posixpath.join(root, "docs"), exist_ok=True)
    pq.write_table(table, posixpath.join(root, "docs", f"{item['stem']}.parquet"), filesystem=fs)
    return [parts[name] for name in sorted(parts)]


def _assignments(url: str) -> dict[str, int]:
    """doc_id -> super_cluster of one chunk, read by the worker from cluster/assignments (the last one
    kept, by URL and version: a worker's files mostly come from one chunk, and a reused worker must
    not keep an old clustering's map after --redo cluster)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    info = fs.info(path)
    version = (url, info.get("size"), str(info.get("mtime") or info.get("LastModified") or info.get("ETag")
                                         or info.get("etag") or info.get("updated") or ""))
    if version not in _LOOKUP:
        import pyarrow.parquet as pq

        _LOOKUP.clear()
        table = pq.read_table(path, filesystem=fs, columns=["doc_id", "super_cluster"])
        _LOOKUP[version] = dict(zip(table.column("doc_id").to_pylist(), table.column("super_cluster").to_pylist()))
    return _LOOKUP[version]


def _outside_vocabulary(doc_id: str, doc: np.ndarray, vocab_size: int, field: str) -> CorpusError:
    return CorpusError(f"document {doc_id!r} has token id {int(doc.max())} in "
                       f"corpus.token_ids_field={field!r}, outside the vocabulary of tokens.tokenizer "
                       f"({vocab_size} ids): were the ids made with another tokenizer?")
