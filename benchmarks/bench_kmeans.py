"""k-means: our faiss backend end to end vs faiss called directly, and vs scikit-learn.

Same array for all three (sentence embeddings of the demo run if one exists, else a Gaussian
mixture on the unit sphere), same k, same iterations; "end to end" = fit + assign every row. Best of two runs (scikit-learn: one).

    .venv/bin/python benchmarks/bench_kmeans.py --n 50000 --k 200 --niter 20
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def data(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(64, dim))
    x = centers[rng.integers(0, 64, size=n)] + 0.6 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed(fn, repeats: int = 2):
    """Best of `repeats` runs (the first also warms up BLAS and OpenMP)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=200)
    parser.add_argument("--niter", type=int, default=20)
    args = parser.parse_args()
    import faiss
    from sklearn.cluster import KMeans

    from climb_ray.cluster import assign, fit_kmeans

    x = data(args.n, args.dim, 0)

    def ours():
        return assign(x, fit_kmeans(x, args.k, backend="faiss", niter=args.niter, seed=0))

    def faiss_direct():
        km = faiss.Kmeans(args.dim, args.k, niter=args.niter, seed=0, verbose=False,
                          max_points_per_centroid=max(256, args.n // args.k + 1))
        km.train(x)
        return km.index.search(x, 1)[1][:, 0]

    def sklearn():
        return KMeans(n_clusters=args.k, n_init=1, max_iter=args.niter, random_state=0).fit(x).predict(x)

    t_faiss, labels_faiss = timed(faiss_direct)
    t_ours, labels_ours = timed(ours)
    t_sk, _ = timed(sklearn, repeats=1)
    agree = float(np.mean(labels_faiss == labels_ours))
    print(f"n {args.n}, dim {args.dim}, k {args.k}, niter {args.niter}, faiss threads {faiss.omp_get_max_threads()}")
    print(f"faiss direct   {t_faiss:7.2f} s")
    print(f"ours (faiss)   {t_ours:7.2f} s   same labels as faiss direct: {agree:.3f}")
    print(f"scikit-learn   {t_sk:7.2f} s")
    print(f"ratio ours / faiss direct (time): {t_ours / t_faiss:.2f}  (target <= 1.2)")
    print(f"speed-up of ours over scikit-learn: {t_sk / t_ours:.1f}x")


if __name__ == "__main__":
    main()
