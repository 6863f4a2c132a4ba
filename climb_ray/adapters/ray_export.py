"""The export on Ray Data; climb_ray.export decides every number.

Planning: tasks over tokens/docs/*.parquet (doc_id, super_cluster, n_tokens) add up each cluster's
tokens per key bin, then hand back the documents of one bin per cluster. Writing: tasks give each
document of tokens/docs its cluster's copies (from the small per-cluster plan and the document's own
key), corpus rows meet them in a group-by on a range of the document key (no per-document map in the
driver, none in a task beyond its group), are optionally tokenized, ordered by their seeded key across
clusters (a distributed sort, spilled to disk by Ray when large) and streamed to the shard writer.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from climb_ray.adapters.ray_data import read_documents
from climb_ray.config import CorpusConfig
from climb_ray.export import BINS, ClusterPlan, add_histogram, copies, doc_key, key_bins, key_cutoff, key_histogram

ROWS_PER_BATCH = 1024  # rows handed to the writer at a time: fixed, so shard boundaries are too
GROUP_ROWS = 20_000  # planned rows per group of the group-by that brings documents and their cluster together


def _doc_files(urls: list[str]) -> ray.data.Dataset:
    """One row per tokens/docs file: its URL and its index (the reading order, for plan_cluster's ties)."""
    items = [{"index": i, "url": url} for i, url in enumerate(urls)]
    return ray.data.from_items(items, override_num_blocks=max(1, len(items)))


def _read_doc_file(url: str, seed: int, n_clusters: int):
    """(doc ids, clusters, tokens, keys, rows) of one tokens/docs file's documents in clusters 0..n-1."""
    import fsspec
    import pyarrow.parquet as pq

    fs, path = fsspec.core.url_to_fs(url)
    table = pq.read_table(path, filesystem=fs, columns=["doc_id", "super_cluster", "n_tokens"])
    supers = table.column("super_cluster").to_numpy().astype(np.int64)
    rows = np.flatnonzero((supers >= 0) & (supers < n_clusters))
    ids = table.column("doc_id").take(pa.array(rows)).to_pylist()
    keys = np.array([doc_key(d, seed) for d in ids], dtype=np.float64)
    return ids, supers[rows], table.column("n_tokens").to_numpy()[rows].astype(np.int64), keys, rows


def key_histograms(urls: list[str], seed: int, n_clusters: int, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, documents), each (n_clusters, bins): every cluster's documents counted per key bin."""
    def part(batch: dict) -> dict:
        _, supers, tokens, keys, _ = _read_doc_file(str(batch["url"][0]), seed, n_clusters)
        cells, token_counts, doc_counts = key_histogram(supers, keys, tokens, bins)
        return {"cells": cells, "tokens": token_counts, "docs": doc_counts}

    tokens, docs = np.zeros((n_clusters, bins), np.int64), np.zeros((n_clusters, bins), np.int64)
    for batch in _doc_files(urls).map_batches(part, batch_size=1, batch_format="numpy").iter_batches(
            batch_format="numpy", batch_size=None):
        add_histogram(tokens, batch["cells"], batch["tokens"])
        add_histogram(docs, batch["cells"], batch["docs"])
    return tokens, docs


def boundary_documents(urls: list[str], seed: int, edges: np.ndarray, bins: int = BINS) -> list[tuple]:
    """Per cluster, (keys, tokens, positions in reading order) of its documents in key bin edges[c]
    (-1: none)."""
    def part(batch: dict) -> dict:
        index = int(batch["index"][0])
        _, supers, tokens, keys, rows = _read_doc_file(str(batch["url"][0]), seed, len(edges))
        hit = key_bins(keys, bins) == edges[supers]
        return {"cluster": supers[hit], "key": keys[hit], "tokens": tokens[hit],
                "position": (np.int64(index) << 32) + rows[hit]}

    found = _doc_files(urls).map_batches(part, batch_size=1, batch_format="numpy").take_all()
    out = []
    for c in range(len(edges)):
        mine = [row for row in found if row["cluster"] == c]
        out.append((np.array([r["key"] for r in mine], np.float64), np.array([r["tokens"] for r in mine], np.int64),
                    np.array([r["position"] for r in mine], np.int64)))
    return out


def export_rows(files: list[tuple[str, str]], corpus: CorpusConfig, doc_urls: list[str], plans: list[ClusterPlan],
                seed: int, sizes: tuple[int, int], tokenizer_json: str | None = None, eot: int = 0):
    """Batches (pyarrow) of text, cluster, doc_id[, ids] in final order: each document of tokens/docs
    as many times as its cluster's plan says (`copies`). sizes: (rows planned, documents in tokens/docs)."""
    tok_ref = ray.put(tokenizer_json) if tokenizer_json else None
    column = "ids" if corpus.token_ids_field else "text"
    value_type = pa.large_list(pa.int64()) if column == "ids" else pa.string()
    cutoff = key_cutoff(plans)
    groups = max(1, -(-int(max(sizes[0], sizes[1] * min(cutoff, 1.0))) // GROUP_ROWS))

    def side(keys: np.ndarray, doc_ids: list, clusters: list, times: list, values: pa.Array) -> pa.Table:
        group = (keys * 2.0**32).astype(np.int64) % groups  # the key's low bits: even also below a small cutoff
        return pa.table({"group": pa.array(group, pa.int64()), "doc_id": pa.array(doc_ids, pa.string()),
                         "cluster": pa.array(clusters, pa.string()), "copies": pa.array(times, pa.int64()),
                         column: values})

    def chosen(batch: dict) -> pa.Table:  # a tokens/docs file: its documents that go in, with cluster and copies
        ids, supers, _, keys, _ = _read_doc_file(str(batch["url"][0]), seed, len(plans))
        times = np.array([copies(plans[s], k) for s, k in zip(supers, keys)], dtype=np.int64)
        keep = np.flatnonzero(times > 0)
        return side(keys[keep], [ids[i] for i in keep], [plans[supers[i]].name for i in keep], times[keep],
                    pa.nulls(len(keep), value_type))

    def candidates(batch: dict) -> pa.Table:  # corpus rows, less those no plan can take
        keys = np.array([doc_key(str(d), seed) for d in batch["doc_id"]], dtype=np.float64)
        keep = np.flatnonzero(keys <= cutoff)
        values = [batch[column][i] for i in keep]
        return side(keys[keep], [str(batch["doc_id"][i]) for i in keep], [""] * len(keep), [0] * len(keep),
                    _large_lists(values) if column == "ids" else pa.array([str(v) for v in values], pa.string()))

    def expand(group: pa.Table) -> pa.Table:  # one group: its chosen documents meet their corpus rows
        times = group.column("copies").to_numpy()
        lookup = {d: (c, t) for d, c, t in zip(group.column("doc_id").to_pylist(), group.column("cluster").to_pylist(),
                                                times) if t > 0}
        text = group.filter(pa.compute.equal(group.column("copies"), 0))
        rows = {"key": [], column: [], "cluster": [], "doc_id": []}
        for doc_id, value in zip(text.column("doc_id").to_pylist(), text.column(column).to_pylist()):
            cluster, times = lookup.get(doc_id, ("", 0))
            for copy in range(times):
                rows["key"].append(doc_key(doc_id, seed, copy))
                rows[column].append(value if column == "text" else np.append(value, eot))
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

    documents = _doc_files(doc_urls).map_batches(chosen, batch_size=1, batch_format="numpy")
    texts = read_documents(files, corpus).map_batches(candidates, batch_size=256, batch_format="numpy")
    ds = texts.union(documents).groupby("group", num_partitions=min(groups, 64)).map_groups(
        expand, batch_format="pyarrow")
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
