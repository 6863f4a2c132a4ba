"""The cluster stage on Ray: fit k-means on a sample, assign every document in Ray Data passes,
prune and merge (climb_ray.cluster), write assignments and the report inputs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from climb_ray.cluster import ClusterStats, assign, fit_kmeans


def embeddings_of(table: pa.Table) -> np.ndarray:
    """The fixed-size-list `embedding` column as an (N, D) float32 array."""
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)


def read_embeddings(url: str, columns: list[str]) -> ray.data.Dataset:
    return ray.data.read_parquet(url, file_extensions=["parquet"]).select_columns(columns)


def sample_embeddings(url: str, n_docs: int, fit_sample: int, seed: int) -> np.ndarray:
    """About `fit_sample` embeddings drawn uniformly (all of them when there are fewer)."""
    ds = read_embeddings(url, ["embedding"])
    if fit_sample < n_docs:
        ds = ds.random_sample(min(1.0, 1.1 * fit_sample / n_docs), seed=seed)
    parts = [embeddings_of(b) for b in ds.iter_batches(batch_format="pyarrow", batch_size=65536)]
    x = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
    return x[:fit_sample]


def fit_centroids(x: np.ndarray, k: int, *, backend: str, niter: int, seed: int) -> np.ndarray:
    """k-means as a Ray task: on a GPU for cuML, on a CPU worker otherwise (the driver stays light)."""
    task = ray.remote(num_gpus=1 if backend == "cuml" else 0, num_cpus=1)(fit_kmeans)
    return ray.get(task.remote(x, k, backend=backend, niter=niter, seed=seed))


def cluster_statistics(url: str, centroids: np.ndarray) -> ClusterStats:
    """Pass 1: documents, tokens and quality per k-means cluster, summed over every document."""
    k = len(centroids)
    ref = ray.put(centroids)

    def stats(batch: pa.Table) -> dict:
        labels = assign(embeddings_of(batch), ray.get(ref))
        part = ClusterStats.of(labels, batch.column("n_tokens").to_numpy(), batch.column("quality").to_numpy(), k)
        return {"documents": part.documents[None], "tokens": part.tokens[None], "quality_sum": part.quality_sum[None]}

    total = ClusterStats.empty(k)
    ds = read_embeddings(url, ["embedding", "n_tokens", "quality"]).map_batches(stats, batch_format="pyarrow")
    for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
        total.add(ClusterStats(batch["documents"].sum(0), batch["tokens"].sum(0), batch["quality_sum"].sum(0)))
    return total


def write_assignments(url: str, centroids: np.ndarray, super_of: np.ndarray, out_url: str) -> None:
    """Pass 2: doc_id, cluster, super_cluster (-1: pruned), quality, n_tokens, text_head per document."""
    refs = ray.put((centroids, super_of))

    def label(batch: pa.Table) -> pa.Table:
        cents, supers = ray.get(refs)
        clusters = assign(embeddings_of(batch), cents)
        return pa.table({"doc_id": batch.column("doc_id"), "cluster": pa.array(clusters, pa.int32()),
                         "super_cluster": pa.array(supers[clusters], pa.int32()),
                         "quality": batch.column("quality"), "n_tokens": batch.column("n_tokens"),
                         "text_head": batch.column("text_head")})

    columns = ["doc_id", "embedding", "quality", "n_tokens", "text_head"]
    read_embeddings(url, columns).map_batches(label, batch_format="pyarrow").write_parquet(out_url)


def sample_texts(assignments_url: str, n_super: int, per_super: int, n_docs: int, seed: int) -> dict[int, list[str]]:
    """Up to `per_super` document heads of each super-cluster, drawn at random for the report."""
    ds = read_embeddings(assignments_url, ["super_cluster", "text_head"])
    fraction = min(1.0, 4.0 * per_super * max(n_super, 1) / max(n_docs, 1))
    if fraction < 1.0:
        ds = ds.random_sample(fraction, seed=seed)
    out: dict[int, list[str]] = {s: [] for s in range(n_super)}
    for batch in ds.iter_batches(batch_format="numpy", batch_size=65536):
        for s, text in zip(batch["super_cluster"], batch["text_head"]):
            if s >= 0 and len(out[int(s)]) < per_super:
                out[int(s)].append(str(text))
    return out
