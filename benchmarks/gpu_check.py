"""Every GPU path of climb_ray in one run (under 5 minutes on one GPU), each check timed and reported.

    python benchmarks/gpu_check.py --out gpu_check.json           # on a GPU node
    python benchmarks/gpu_check.py --allow-cpu --tiny              # the same code on CPU, tiny sizes (a test)

Checks: the encoder in bf16 against fp32 (docs/s, cosine), cuML k-means fit and assignment against
faiss on the same vectors, the proxy in bf16 with and without torch.compile (tokens/s, MFU), DoReMi
on CUDA, and the whole demo on the GPU through Ray (GPU encoder actors and proxy trials) with its
predictor served by Ray Serve and asked over HTTP. A check whose library is missing is skipped and
says which; without a GPU (and without --allow-cpu) every check is skipped and the script exits 0.
Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CHECKS = ("embed", "kmeans", "proxy", "doremi", "pipeline_serve")


class Skip(Exception):
    """A check that cannot run here (a missing library or no GPU); the message says why, `partial` holds
    what was measured before."""

    def __init__(self, why: str, partial: dict | None = None):
        super().__init__(why)
        self.partial = partial or {}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def texts(n: int) -> list[str]:
    """n real-looking documents: sentences of the demo's word list in varied lengths."""
    rng = np.random.default_rng(0)
    words = ("the data mixture of a language model decides what it learns from each source such as code "
             "books papers news forums and the web in proportions chosen before training begins").split()
    return [" ".join(rng.choice(words, size=int(rng.integers(20, 200)))) for _ in range(n)]


def check_embed(device: str, tiny: bool) -> dict:
    from climb_ray.embed import Embedder

    docs = texts(64 if tiny else 8192)
    out = {}
    vectors = {}
    for dtype in ("float32", "bfloat16"):
        emb = Embedder("all-MiniLM-L6-v2", dtype=dtype, device=device, batch_size=256)
        emb.embed(docs[:8])  # first-use costs
        _sync(device)
        start = time.perf_counter()
        vectors[dtype] = emb.embed(docs)
        _sync(device)
        out[f"{dtype}_docs_per_s"] = round(len(docs) / (time.perf_counter() - start), 1)
    cos = np.sum(vectors["float32"] * vectors["bfloat16"], axis=1)
    out["cosine_bf16_vs_fp32_min"] = round(float(cos.min()), 5)
    if cos.min() < 0.99:
        raise AssertionError(f"bf16 vectors drift from fp32: smallest cosine {cos.min():.4f} < 0.99")
    return out


def check_kmeans(device: str, tiny: bool) -> dict:
    from climb_ray.cluster import assign, fit_kmeans

    rng = np.random.default_rng(0)
    n, k = (2000, 20) if tiny else (200_000, 1000)
    x = rng.standard_normal((n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out = {"documents": n, "k": k}
    start = time.perf_counter()
    faiss_centroids = fit_kmeans(x, k, backend="faiss", niter=10)
    out["faiss_fit_s"] = round(time.perf_counter() - start, 2)
    if importlib.util.find_spec("cuml") is None:
        raise Skip("cuML is not installed (pip install -e '.[gpu]' on the GPU nodes)", out)
    start = time.perf_counter()
    centroids = fit_kmeans(x, k, backend="cuml", niter=10)
    out["cuml_fit_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    labels = assign(x, centroids)
    out["assign_s"] = round(time.perf_counter() - start, 2)
    sizes = np.bincount(labels, minlength=k)
    out["empty_clusters"] = int((sizes == 0).sum())
    inertia = lambda c: float(np.mean(np.min(((x[:5000, None, :] - c[None]) ** 2).sum(-1), axis=1)))  # noqa: E731
    out["inertia_cuml_vs_faiss"] = round(inertia(centroids) / inertia(faiss_centroids), 3)
    return out


def check_proxy(device: str, tiny: bool) -> dict:
    import torch

    from bench_proxy import PEAK_BF16, SHAPES, flops_per_token, make_shards
    from climb_ray.config import ProxyConfig
    from climb_ray.mixture import MixtureStream
    from climb_ray.proxy import build_model, train

    h, layers, heads, inter = SHAPES["demo" if tiny else "62m"]
    vocab, context, batch, steps = (1024, 64, 4, 4) if tiny else (32_000, 1024, 32, 30)
    out = {"shape": "demo" if tiny else "62m", "batch": batch, "context": context}
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    peak = next((v for key, v in PEAK_BF16.items() if key in name), None)
    compiles = (False, True) if device.startswith("cuda") else (False,)  # compiling on CPU takes minutes
    with tempfile.TemporaryDirectory() as folder:
        arrays = make_shards(folder, vocab, tokens=200_000 if tiny else 20_000_000)
        for compile_ in compiles:
            p = ProxyConfig(hidden_size=h, num_layers=layers, num_heads=heads, intermediate_size=inter,
                            context=context, batch_size=batch, steps=steps, warmup_steps=1, compile=compile_)
            stream = MixtureStream(arrays, [f"sc{i:02d}" for i in range(len(arrays))], [0.4, 0.3, 0.2, 0.1],
                                   n_sequences=p.sequences, seq_len=context, max_epochs=15, seed=0)
            warm = dataclasses.replace(p, steps=3)
            model = build_model(p, vocab, seed=0)
            train(model, (stream.batch(i, batch) for i in range(3)), warm, device=device)  # compile + first use
            stats = train(model, (stream.batch(i, batch) for i in range(steps)), p, device=device)
            key = "compiled" if compile_ else "eager"
            out[f"{key}_tokens_per_s"] = round(stats.tokens_per_second)
            if peak:
                out[f"{key}_mfu"] = round(stats.tokens_per_second * flops_per_token(p, vocab) / peak, 4)
            if not np.isfinite(stats.losses).all():
                raise AssertionError(f"{key} proxy: non-finite loss {stats.losses}")
    return out


def check_doremi(device: str, tiny: bool) -> dict:
    from climb_ray.baselines.doremi import run_doremi
    from climb_ray.config import Config

    cfg = Config()
    cfg.proxy = dataclasses.replace(cfg.proxy, hidden_size=128, num_layers=2, num_heads=4, intermediate_size=512,
                                    context=64, batch_size=8, warmup_steps=2)
    cfg.doremi = dataclasses.replace(cfg.doremi, steps=20 if tiny else 300)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(1 + 100 * i, 101 + 100 * i, size=100_000).astype(np.uint16) for i in range(4)]
    start = time.perf_counter()
    result = run_doremi(arrays, [f"sc{i:02d}" for i in range(4)], cfg, 512, device=device)
    weights = np.asarray(result.weights)
    if not (np.isfinite(weights).all() and abs(weights.sum() - 1) < 1e-6):
        raise AssertionError(f"DoReMi weights are not a mixture: {weights}")
    return {"seconds": round(time.perf_counter() - start, 1), "weights": [round(float(w), 4) for w in weights]}


def check_pipeline_serve(device: str, tiny: bool) -> dict:
    """The demo through Ray on the GPU (encoder actors, proxy trials), then its predictor over HTTP."""
    if importlib.util.find_spec("ray") is None:
        raise Skip("ray is not installed")
    import urllib.request

    cli = [sys.executable, "-m", "climb_ray.cli"]
    place = "cpu" if device == "cpu" else "gpu"
    with tempfile.TemporaryDirectory() as folder:
        run = f"{folder}/run"
        over = [f"run_dir={run}", f"corpus.paths=[{folder}/corpus.jsonl]", f"target.paths=[{folder}/target.jsonl]",
                f"resources.device={place}", "serve.port=8765"]
        if tiny:
            over += ["search.schedule=[6,3]", "proxy.steps=4"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
        start = time.perf_counter()
        demo = subprocess.run([*cli, "demo", "--config", "demo", "--docs-per-source", "60" if tiny else "400", *over],
                              env=env, cwd=folder, timeout=1500, capture_output=True, text=True)
        if demo.returncode:
            raise AssertionError(f"the demo on {place} failed ({demo.returncode}): {demo.stderr[-1500:]}")
        out = {"demo_s": round(time.perf_counter() - start, 1)}
        log = open(f"{folder}/serve.log", "w")
        serve = subprocess.Popen([*cli, "serve", "--config", "demo", *over], env=env, cwd=folder,
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 180
            while True:
                try:
                    with urllib.request.urlopen("http://127.0.0.1:8765/healthz", timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    if time.time() > deadline or serve.poll() is not None:
                        tail = Path(f"{folder}/serve.log").read_text()[-1500:]
                        raise AssertionError(f"the server did not come up: {tail}") from None
                    time.sleep(1)
            with urllib.request.urlopen("http://127.0.0.1:8765/v1/best?k=1", timeout=30) as r:
                out["best"] = json.loads(r.read())
        finally:
            serve.terminate()
            serve.wait(timeout=60)
            log.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CHECKS), help=f"checks to run, of {', '.join(CHECKS)}")
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU when there is no GPU (a smoke test)")
    parser.add_argument("--tiny", action="store_true", help="tiny sizes (seconds, not minutes)")
    parser.add_argument("--out", default="", help="write the results as JSON here")
    args = parser.parse_args(argv)
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(CHECKS))
    if unknown:
        parser.error(f"--only: unknown checks {unknown}; known: {', '.join(CHECKS)}")
    results = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "checks": {}}
    for name in names:
        start = time.perf_counter()
        try:
            if device == "cpu" and not args.allow_cpu:
                raise Skip("no CUDA GPU (pass --allow-cpu to run the checks on CPU)")
            result = {"status": "ok", **globals()[f"check_{name}"](device, args.tiny)}
        except Skip as why:
            result = {"status": "skipped", "why": str(why), **why.partial}
        except Exception as err:  # a failing check is reported, and the others still run
            result = {"status": "failed", "error": f"{type(err).__name__}: {err}",
                      "trace": traceback.format_exc(limit=4)}
        result["wall_s"] = round(time.perf_counter() - start, 1)
        results["checks"][name] = result
        print(f"{name:15s} {result['status']:8s} {json.dumps({k: v for k, v in result.items() if k not in ('status', 'trace')})}",
              flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["status"] == "failed" for r in results["checks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
