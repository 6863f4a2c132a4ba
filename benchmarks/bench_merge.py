"""Super-cluster merging: how much of the source structure each merge choice keeps, vs plain k-means.

Two corpora with known sources, each embedded once with the packaged all-MiniLM-L6-v2 (128 tokens, as the demo config;
vectors cached under data/bench_merge/): the demo corpus (5 sources, climb_ray/democorpus.py) and
a second one of 6 other sources (benchmarks/merge_corpus.py). For each seed: k-means with k_init
clusters on all documents, then each merge choice to n_super groups (and cut at a distance); each
is scored by purity and adjusted mutual information (AMI) against the sources, beside plain
k-means with k = the number of groups it made (same seed). Ratio = ours / plain k-means (mean over
seeds; "min" = the worst seed's purity ratio).

    .venv/bin/python benchmarks/bench_merge.py --corpora demo,packages --k-init 50,200 --seeds 20
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
CACHE = Path(__file__).resolve().parents[1] / "data" / "bench_merge"


def corpus(name: str) -> tuple[list[str], list[str]]:
    """(texts, sources) of the named corpus."""
    if name == "demo":
        from climb_ray.democorpus import build_demo_corpus

        path = CACHE / "demo.jsonl"
        if not path.exists():
            build_demo_corpus(path, docs_per_source=800, seed=0)
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [r["text"] for r in rows], [r["source"] for r in rows]
    import merge_corpus

    return merge_corpus.build(docs_per_source=500, seed=0)


def embedded(name: str, threads: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(vectors, source ids, source names), embedding the corpus only the first time."""
    path = CACHE / f"{name}.npz"
    if not path.exists():
        from climb_ray.embed import Embedder

        texts, sources = corpus(name)
        start = time.perf_counter()
        vectors = Embedder("all-MiniLM-L6-v2", max_tokens=128, batch_size=64, threads=threads).embed(texts)
        print(f"embedded {name}: {len(texts)} documents in {time.perf_counter() - start:.0f} s", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, vectors=vectors, sources=np.array(sources))
    data = np.load(path)
    names, truth = np.unique(data["sources"], return_inverse=True)
    return data["vectors"], truth, list(names)


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of documents whose group's most common source is their own."""
    return sum(np.bincount(truth[labels == g]).max() for g in np.unique(labels)) / len(truth)


def average_members(centroids: np.ndarray, documents: np.ndarray, n_groups: int) -> np.ndarray:
    """Average linkage over member documents (UPGMA, cosine distance), for comparison: with unit-length
    documents the mean distance between the members of two clusters is 1 - (their centroids' dot)."""
    d = 1.0 - centroids.astype(np.float64) @ centroids.T.astype(np.float64)
    size, k = documents.astype(np.float64).copy(), len(centroids)
    np.fill_diagonal(d, np.inf)
    label, alive = np.arange(k), np.ones(k, dtype=bool)
    for _ in range(k - n_groups):
        a, b = divmod(int(np.argmin(d)), k)
        merged = (size[a] * d[a] + size[b] * d[b]) / (size[a] + size[b])
        merged[~alive] = np.inf
        d[a, :], d[:, a] = merged, merged
        d[a, a] = np.inf
        d[b, :], d[:, b] = np.inf, np.inf
        size[a] += size[b]
        alive[b] = False
        label[label == b] = a
    return label


def evaluate(x: np.ndarray, truth: np.ndarray, *, k_init: int, n_super: int, distance: float, seed: int,
             niter: int) -> list[dict]:
    """One row per (mode, method): purity and AMI of its groups and of plain k-means with as many."""
    from sklearn.metrics import adjusted_mutual_info_score as ami

    from climb_ray.cluster import MERGE_METHODS, assign, fit_kmeans, merge

    centroids = fit_kmeans(x, k_init, niter=niter, seed=seed)
    labels = assign(x, centroids)
    documents = np.bincount(labels, minlength=k_init)
    kept = documents > 0
    choices = [(mode, m, (lambda m=m, n=n, dist=dist: merge(centroids, kept, distance=dist, n_super=n,
                                                            documents=documents, method=m)))
               for mode, n, dist in (("count", n_super, 0.0), (f"distance {distance:g}", 0, distance))
               for m in MERGE_METHODS]
    choices.append(("count", "average_members", lambda: _full(average_members(centroids[kept], documents[kept],
                                                                              n_super), kept)))
    rows, baselines = [], {}
    for mode, method, run in choices:
        start = time.perf_counter()
        groups = run()[labels]
        seconds = time.perf_counter() - start
        k = len(np.unique(groups))
        if k not in baselines:
            plain = assign(x, fit_kmeans(x, k, niter=niter, seed=seed))
            baselines[k] = purity(plain, truth), ami(truth, plain)
        rows.append({"mode": mode, "method": method, "groups": k, "purity": purity(groups, truth),
                     "ami": ami(truth, groups), "kmeans_purity": baselines[k][0], "kmeans_ami": baselines[k][1],
                     "seconds": seconds})
    return rows


def _full(groups: np.ndarray, kept: np.ndarray) -> np.ndarray:
    out = np.full(len(kept), -1)
    out[kept] = groups
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="demo,packages", help="comma-separated: demo, packages")
    parser.add_argument("--k-init", default="50,200", help="k-means clusters before merging, comma-separated")
    parser.add_argument("--n-super", type=int, default=0, help="groups to merge to; 0 = the corpus's sources")
    parser.add_argument("--distance", type=float, default=1.5, help="Ward distance of the threshold rows")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--niter", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the one-time embedding")
    parser.add_argument("--embed-only", action="store_true", help="embed and cache the corpora, then stop")
    args = parser.parse_args()
    for name in args.corpora.split(","):
        x, truth, names = embedded(name, args.threads)
        print(f"\n{name}: {len(x)} documents, " + ", ".join(f"{s} {c}" for s, c in zip(names, np.bincount(truth))))
        if args.embed_only:
            continue
        n_super = args.n_super or len(names)
        print(f"{'k_init':>6} {'mode':<13} {'method':<16} {'groups':>6} {'purity':>7} {'k-means':>7} {'ratio':>6}"
              f" {'min':>5} {'AMI':>6} {'k-means':>7} {'ratio':>6}")
        for k_init in map(int, args.k_init.split(",")):
            per_seed = [evaluate(x, truth, k_init=k_init, n_super=n_super, distance=args.distance, seed=seed,
                                 niter=args.niter) for seed in range(args.seeds)]
            for i, row in enumerate(per_seed[0]):
                rows = [seed_rows[i] for seed_rows in per_seed]
                mean = {key: float(np.mean([r[key] for r in rows])) for key in row if key not in ("mode", "method")}
                worst = min(r["purity"] / r["kmeans_purity"] for r in rows)
                print(f"{k_init:>6} {row['mode']:<13} {row['method']:<16} {mean['groups']:>6.1f} {mean['purity']:>7.3f}"
                      f" {mean['kmeans_purity']:>7.3f} {mean['purity'] / mean['kmeans_purity']:>6.3f} {worst:>5.3f}"
                      f" {mean['ami']:>6.3f} {mean['kmeans_ami']:>7.3f} {mean['ami'] / mean['kmeans_ami']:>6.3f}",
                      flush=True)


if __name__ == "__main__":
    main()
