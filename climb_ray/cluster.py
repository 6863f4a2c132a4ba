"""k-means backends, nearest-centroid assignment, quality pruning and Ward merging.

Arrays in, arrays out; no Ray. The cluster stage (adapters/ray_data.py) fits on a sample, assigns
every document in a Ray Data pass, then prunes and merges the per-cluster statistics here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from climb_ray.config import ConfigError

BACKENDS = ("faiss", "cuml", "sklearn")


def fit_kmeans(x: np.ndarray, k: int, *, backend: str = "faiss", niter: int = 25, seed: int = 0) -> np.ndarray:
    """Fit k-means on the rows of x (N, D); return the (k, D) float32 centroids."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"k-means needs a non-empty (N, D) array, got shape {x.shape}")
    if k > len(x):
        raise ConfigError(f"cluster.k_init={k} is more than the {len(x)} documents to fit on")
    if backend == "faiss":
        return _fit_faiss(x, k, niter, seed)
    if backend == "sklearn":
        from sklearn.cluster import KMeans

        model = KMeans(n_clusters=k, n_init=1, max_iter=niter, random_state=seed).fit(x)
        return model.cluster_centers_.astype(np.float32)
    if backend == "cuml":
        return _fit_cuml(x, k, niter, seed)
    raise ValueError(f"cluster.backend={backend!r}: must be one of {', '.join(BACKENDS)}")


def _fit_faiss(x: np.ndarray, k: int, niter: int, seed: int) -> np.ndarray:
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=niter, seed=seed, verbose=False,
                      max_points_per_centroid=max(256, len(x) // k + 1))
    km.train(x)
    return np.asarray(km.centroids, dtype=np.float32)


def _fit_cuml(x: np.ndarray, k: int, niter: int, seed: int) -> np.ndarray:
    try:
        from cuml.cluster import KMeans
    except ImportError as err:
        raise ConfigError(
            "cluster.backend='cuml' needs cuML and a CUDA GPU: pip install -e '<climb_ray checkout>[gpu]' on the "
            f"GPU nodes, or use cluster.backend=faiss ({err})"
        ) from None
    model = KMeans(n_clusters=k, max_iter=niter, random_state=seed, n_init=1).fit(x)
    centers = model.cluster_centers_
    return np.asarray(centers.get() if hasattr(centers, "get") else centers, dtype=np.float32)


def assign(x: np.ndarray, centroids: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) for each row of x: (N,) int32."""
    x = np.asarray(x, dtype=np.float32)
    half_norms = 0.5 * np.einsum("kd,kd->k", centroids, centroids)
    out = np.empty(len(x), dtype=np.int32)
    for start in range(0, len(x), chunk):
        scores = x[start:start + chunk] @ centroids.T - half_norms  # argmax == argmin distance
        out[start:start + chunk] = scores.argmax(axis=1)
    return out


@dataclass
class ClusterStats:
    documents: np.ndarray  # (K,) documents per k-means cluster
    tokens: np.ndarray  # (K,) tokens per cluster
    quality_sum: np.ndarray  # (K,) sum of document quality scores

    @classmethod
    def empty(cls, k: int) -> "ClusterStats":
        return cls(np.zeros(k, np.int64), np.zeros(k, np.int64), np.zeros(k, np.float64))

    @classmethod
    def of(cls, labels: np.ndarray, tokens: np.ndarray, quality: np.ndarray, k: int) -> "ClusterStats":
        return cls(np.bincount(labels, minlength=k).astype(np.int64),
                   np.bincount(labels, weights=tokens, minlength=k).astype(np.int64),
                   np.bincount(labels, weights=quality, minlength=k))

    def add(self, other: "ClusterStats") -> None:
        self.documents += other.documents
        self.tokens += other.tokens
        self.quality_sum += other.quality_sum

    @property
    def mean_quality(self) -> np.ndarray:
        return self.quality_sum / np.maximum(self.documents, 1)


def prune(stats: ClusterStats, threshold: float) -> np.ndarray:
    """Boolean (K,) mask of clusters kept: non-empty, with mean quality at least `threshold`."""
    return (stats.documents > 0) & (stats.mean_quality >= threshold)


def ward_groups(points: np.ndarray, weights: np.ndarray, *, distance: float, n_groups: int = 0) -> np.ndarray:
    """Ward agglomerative clustering of weighted points; (K,) group label per point.

    A point of weight n stands for n documents at that spot, so a big cluster weighs more than a
    small one (with all weights 1 this is scipy's `linkage(method="ward")`). Merges run while the
    Ward distance is at most `distance`, or until `n_groups` groups remain when n_groups > 0.
    Lance-Williams updates: O(K^2) memory and about K^3 / 2 comparisons (K = 1000: about a second).
    """
    k = len(points)
    size = np.asarray(weights, dtype=np.float64).copy()
    pts = points.astype(np.float64)
    sq = np.maximum(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1), 0.0)
    d2 = 2.0 * np.outer(size, size) / (size[:, None] + size[None, :]) * sq  # squared Ward distances
    np.fill_diagonal(d2, np.inf)
    label, alive = np.arange(k), np.ones(k, dtype=bool)
    for _ in range(k - max(n_groups, 1)):
        flat = int(np.argmin(d2))
        a, b = divmod(flat, k)
        if not n_groups and np.sqrt(d2[a, b]) > distance:
            break
        total = size[a] + size[b] + size
        merged = ((size[a] + size) * d2[a] + (size[b] + size) * d2[b] - size * d2[a, b]) / total
        merged[~alive] = np.inf
        d2[a, :], d2[:, a] = merged, merged
        d2[a, a] = np.inf
        d2[b, :], d2[:, b] = np.inf, np.inf
        size[a] += size[b]
        alive[b] = False
        label[label == b] = a
    return label


MERGE_METHODS = ("ward_kmeans", "ward_documents", "ward_centroid")


def kmeans_refine(points: np.ndarray, weights: np.ndarray, groups: np.ndarray, *, max_iter: int = 100) -> np.ndarray:
    """Lloyd's k-means over weighted points, starting from `groups`: each point moves to the group
    whose weighted mean is nearest, until none moves. An iteration that would empty a group is not
    taken, so the number of groups stays. (K,) labels with the same ids as `groups`."""
    pts, w = points.astype(np.float64), np.asarray(weights, dtype=np.float64)
    ids = np.unique(groups)
    current = np.searchsorted(ids, groups)
    for _ in range(max_iter):
        member = np.zeros((len(pts), len(ids)))
        member[np.arange(len(pts)), current] = w
        means = (member.T @ pts) / member.sum(0)[:, None]
        sq = (pts ** 2).sum(1)[:, None] - 2 * pts @ means.T + (means ** 2).sum(1)[None, :]
        moved = np.argmin(sq, axis=1)
        if np.array_equal(moved, current) or len(np.unique(moved)) < len(ids):
            break
        current = moved
    return ids[current]


def merge(centroids: np.ndarray, kept: np.ndarray, *, distance: float, n_super: int = 0,
          documents: np.ndarray | None = None, method: str = "ward_kmeans") -> np.ndarray:
    """Merge the kept centroids into super-clusters; (K,) super-cluster id, -1 if pruned.

    method (measured in docs/merge-benchmark.md):
    - ward_centroid: the paper's; Ward on the centroids, each counting once.
    - ward_documents: Ward on the documents: each centroid weighs its document count, so merges
      are those of Ward on every document with each k-means cluster kept whole.
    - ward_kmeans (default): ward_documents, then k-means over the same weighted centroids from
      those groups until no centroid moves: the groups then minimise the documents' within-group
      sum of squares as plain k-means does, k-means clusters kept whole.
    Weights are documents divided by their mean, so that `distance` keeps the scale of plain
    Ward on centroids (the paper's 1.5) while a big cluster still pulls harder than a small one.

    Cut at Ward distance `distance`, or into exactly `n_super` groups when n_super > 0. Super-cluster
    ids are ordered by size (most documents first; ties by lowest member cluster).
    """
    if method not in MERGE_METHODS:
        raise ConfigError(f"cluster.merge_method={method!r}: must be one of {', '.join(MERGE_METHODS)}")
    kept_idx = np.flatnonzero(kept)
    if len(kept_idx) == 0:
        raise ConfigError("every cluster was pruned: lower cluster.prune_threshold")
    if n_super > len(kept_idx):
        raise ConfigError(f"cluster.n_super_clusters={n_super} is more than the {len(kept_idx)} kept clusters")
    sizes = documents[kept_idx].astype(np.float64) if documents is not None else np.ones(len(kept_idx))
    weights = np.maximum(sizes, 1.0)
    weights = weights / weights.mean()  # an average-sized pair is as far apart as without weights
    if method == "ward_centroid":
        weights = np.ones(len(kept_idx))
    points = centroids[kept_idx]
    groups = ward_groups(points, weights, distance=distance, n_groups=n_super)
    if method == "ward_kmeans":
        groups = kmeans_refine(points, weights, groups)
    order = sorted(set(groups), key=lambda g: (-sizes[groups == g].sum(), kept_idx[groups == g].min()))
    rank = {g: i for i, g in enumerate(order)}
    out = np.full(len(centroids), -1, dtype=np.int32)
    out[kept_idx] = [rank[g] for g in groups]
    return out
