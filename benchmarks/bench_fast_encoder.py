"""Fast encoder: static embeddings (embed.encoder=static: model2vec, distilled from the packaged all-MiniLM-L6-v2)
vs MiniLM itself, side by side on the demo corpus: documents per second on CPU, and how well each keeps the sources.

Speed: both embed the same first --speed-docs documents (--max-tokens, MiniLM with --threads torch threads), timed
after loading and a warm-up batch, tokenizing included; the static one runs before and after MiniLM and its slower
run counts. Ratio = static / MiniLM docs/s (target >= 20). Quality: every document embedded by each (MiniLM's
vectors cached under data/bench_fast_encoder/), then per seed plain k-means to as many clusters as sources, and the
cluster stage's default (k-means with --k-init, ward_kmeans merge to as many super-clusters), scored by purity
against the sources (bench_merge.purity); target: static within 0.05 of MiniLM.

    .venv/bin/python benchmarks/bench_fast_encoder.py --speed-docs 400 --seeds 5
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
CACHE = Path(__file__).resolve().parents[1] / "data" / "bench_fast_encoder"


def docs_per_second(embedder, texts: list[str], warm: int = 32) -> float:
    embedder.embed(texts[:warm])
    start = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - start)


def minilm_vectors(embedder, texts: list[str], max_tokens: int) -> np.ndarray:
    """MiniLM's vectors of every document, embedded only the first time."""
    path = CACHE / f"minilm-{len(texts)}-{max_tokens}.npy"
    if not path.exists():
        start = time.perf_counter()
        vectors = embedder.embed(texts)
        print(f"MiniLM embedded {len(texts)} documents in {time.perf_counter() - start:.0f} s", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return np.load(path)


def purities(x: np.ndarray, truth: np.ndarray, *, k_init: int, seeds: int) -> tuple[float, float]:
    """Mean purity over seeds: plain k-means to as many clusters as sources, and k-means + the default merge."""
    from bench_merge import purity

    from climb_ray.cluster import assign, fit_kmeans, merge

    n = len(np.unique(truth))
    plain, merged = [], []
    for seed in range(seeds):
        plain.append(purity(assign(x, fit_kmeans(x, n, seed=seed)), truth))
        centroids = fit_kmeans(x, k_init, seed=seed)
        labels = assign(x, centroids)
        documents = np.bincount(labels, minlength=k_init)
        groups = merge(centroids, documents > 0, distance=0.0, n_super=n, documents=documents, method="ward_kmeans")
        merged.append(purity(groups[labels], truth))
    return float(np.mean(plain)), float(np.mean(merged))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/demo_corpus.jsonl")
    parser.add_argument("--speed-docs", type=int, default=400)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k-init", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    if not Path(args.corpus).is_file():
        sys.exit(f"{args.corpus} is missing: run `climb-ray corpus demo` first")
    from climb_ray.embed import Embedder
    from climb_ray.static_embed import StaticEmbedder, load_static_model

    rows = [json.loads(line) for line in Path(args.corpus).read_text(encoding="utf-8").splitlines()]
    texts = [r["text"] for r in rows]
    names, truth = np.unique([r["source"] for r in rows], return_inverse=True)
    start = time.perf_counter()
    static = StaticEmbedder(load_static_model("all-MiniLM-L6-v2"), max_tokens=args.max_tokens)
    print(f"static model ready in {time.perf_counter() - start:.1f} s (distilled only when not cached)", flush=True)
    minilm = Embedder("all-MiniLM-L6-v2", max_tokens=args.max_tokens, batch_size=64, threads=args.threads)
    subset = texts[: args.speed_docs]
    before = docs_per_second(static, subset)
    slow = docs_per_second(minilm, subset)
    fast = min(before, docs_per_second(static, subset))
    x_minilm = minilm_vectors(minilm, texts, args.max_tokens)
    start = time.perf_counter()
    x_static = static.embed(texts)
    static_all = len(texts) / (time.perf_counter() - start)
    print(f"{len(texts)} documents, {len(names)} sources; max_tokens {args.max_tokens}, threads {args.threads}, "
          f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print(f"speed on {len(subset)} docs: MiniLM {slow:.1f} docs/s, static {fast:.1f} docs/s "
          f"(first run {before:.1f}; all {len(texts)} docs: {static_all:.1f})")
    print(f"ratio static / MiniLM docs/s: {fast / slow:.1f}  (target >= 20)")
    results = {}
    for name, x in (("MiniLM", x_minilm), ("static", x_static)):
        results[name] = plain, merged = purities(x, truth, k_init=args.k_init, seeds=args.seeds)
        print(f"{name:<7} dim {x.shape[1]}: purity k-means to {len(names)} {plain:.3f}, "
              f"k_init {args.k_init} + ward_kmeans merge {merged:.3f}")
    gaps = [results["MiniLM"][i] - results["static"][i] for i in range(2)]
    print(f"purity gap MiniLM - static: k-means {gaps[0]:+.3f}, merge {gaps[1]:+.3f}  (target <= 0.05)")


if __name__ == "__main__":
    main()
