"""Fast encoder: static embeddings (embed.encoder=static: model2vec, distilled from the packaged all-MiniLM-L6-v2)
vs MiniLM itself, side by side on the demo corpus: documents per second on CPU, and how well each keeps the sources.

Speed: both embed the same first --speed-docs documents (--max-tokens, MiniLM with --threads torch threads), timed
after loading and a warm-up batch, tokenizing included; the static one runs before and after MiniLM and its slower
run counts. Ratio = static / MiniLM docs/s (target >= 20). Quality: every document embedded by each (MiniLM's
vectors cached under data/bench_fast_encoder/), then per seed plain k-means to as many clusters as sources, and the
cluster stage's default (k-means with --k-init, ward_kmeans merge to as many super-clusters), scored by purity
against the sources (bench_merge.purity); target: static within 0.05 of MiniLM. With --fit-docs (default 1000,
as embed.static_fit_docs) the static vectors are also fitted to MiniLM on a seeded sample, as the embed stage
does ("fitted"), and every purity is scored on the documents outside that sample.

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
    parser.add_argument("--fit-docs", type=int, default=1000,
                        help="documents the static vectors are fitted to MiniLM on (embed.static_fit_docs; 0: none); "
                             "purity is then scored on the other documents only")
    args = parser.parse_args()
    if not Path(args.corpus).is_file():
        sys.exit(f"{args.corpus} is missing: run `climb-ray corpus demo` first")
    from climb_ray.embed import Embedder
    from climb_ray.adapters.ray_data import FIT_SEED
    from climb_ray.export import doc_key
    from climb_ray.static_embed import StaticEmbedder, fitted_static_model, load_static_model

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
    encoders = {"MiniLM": x_minilm, "static": x_static}
    held = np.arange(len(texts))
    if args.fit_docs:  # as the embed stage does: a seeded sample of the corpus, MiniLM's vectors of it
        keys = [doc_key(str(r.get("id", i)), FIT_SEED) for i, r in enumerate(rows)]  # the stage's draw: lowest keys
        fit = np.sort(np.argsort(keys)[: min(args.fit_docs, len(texts) - 1)])
        held = np.setdiff1d(held, fit)
        model = fitted_static_model(static.static, [texts[i] for i in fit], lambda _: x_minilm[fit],
                                    source=f"bench:{args.corpus}", max_tokens=args.max_tokens)
        fitted = StaticEmbedder(model, max_tokens=args.max_tokens)
        fast = min(fast, docs_per_second(fitted, subset))  # the slower of the two tables counts
        encoders["fitted"] = fitted.embed(texts)
    print(f"{len(texts)} documents, {len(names)} sources; max_tokens {args.max_tokens}, threads {args.threads}, "
          f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print(f"speed on {len(subset)} docs: MiniLM {slow:.1f} docs/s, static {fast:.1f} docs/s "
          f"(first run {before:.1f}; all {len(texts)} docs: {static_all:.1f})")
    print(f"ratio static / MiniLM docs/s: {fast / slow:.1f}  (target >= 20)")
    results = {}
    print(f"purity on {len(held)} documents" + (f" (the {len(texts) - len(held)} fitted on left out)"
                                                if len(held) < len(texts) else ""))
    for name, x in encoders.items():
        results[name] = plain, merged = purities(x[held], truth[held], k_init=args.k_init, seeds=args.seeds)
        print(f"{name:<7} dim {x.shape[1]}: purity k-means to {len(names)} {plain:.3f}, "
              f"k_init {args.k_init} + ward_kmeans merge {merged:.3f}")
    best = "fitted" if "fitted" in results else "static"
    gaps = [results["MiniLM"][i] - results[best][i] for i in range(2)]
    print(f"purity gap MiniLM - {best}: k-means {gaps[0]:+.3f}, merge {gaps[1]:+.3f}  (target <= 0.05)")


if __name__ == "__main__":
    main()
