"""Predictor serving: our Ray Serve deployment (climb_ray.adapters.ray_serve) vs a bare FastAPI app
run by uvicorn (1 worker, OMP_NUM_THREADS=1 like the 1-CPU replica) serving the same ServedModel.

With --ray-env RAY_SERVE_ENABLE_DIRECT_INGRESS=1 (set before Ray starts) ours is measured twice: through
Serve's proxy ("ours") and at the replica's own HTTP port ("direct", no proxy hop).
All are driven by the same asyncio aiohttp client over loopback, with pre-encoded JSON bodies:
  1. /v1/predict with one mixture ({"weights": [...]}): requests/s and p50/p99 latency at each
     --concurrency, --requests per level after --warmup requests. Ours checks the token, Host and
     Content-Type, validates the body with pydantic and groups concurrent calls (climb_ray.coalesce); the
     baseline does json + predict.
  2. /v1/predict with batches of --batch random Dirichlet mixtures ({"mixtures": [[...], ...]}):
     mixtures scored per second at each --batch-concurrency, --batch-requests per level
     (target >= 100,000 mixtures/s). Then where the time of one batch goes, in this process.

    .venv/bin/python benchmarks/bench_serve.py                     # synthetic 4-cluster run folder
    .venv/bin/python benchmarks/bench_serve.py --run runs/demo --json serve.json
    .venv/bin/python benchmarks/bench_serve.py --ray-env RAY_SERVE_ENABLE_DIRECT_INGRESS=1
"""

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET = 100_000  # mixtures/s through the batch endpoint


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def baseline_server(run_dir: str, port: int) -> None:
    """The baseline: one route per body shape, parse, predict, answer; nothing else."""
    import uvicorn
    from fastapi import FastAPI, Request, Response

    from climb_ray.served_model import ServedModel

    model, app = ServedModel.load(run_dir), FastAPI()

    @app.post("/v1/predict")
    async def predict(request: Request):
        body = json.loads(await request.body())
        if "weights" in body:
            return {"predicted": float(model.predict(np.asarray([body["weights"]], dtype=np.float64))[0])}
        scores = model.predict(np.asarray(body["mixtures"], dtype=np.float64))
        return Response(json.dumps({"predicted": scores.tolist()}), media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning", access_log=False)


async def drive(url: str, bodies: list[bytes], concurrency: int, n: int, warmup: int, limit_s: float) -> dict:
    """n POSTs (after warmup ones) from `concurrency` connections; requests/s and latency percentiles."""
    import aiohttp

    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def one(i: int) -> float:
            start = time.perf_counter()
            async with session.post(url, data=bodies[i % len(bodies)], headers=headers) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"{url} answered {r.status}: {(await r.text())[:200]}")
            return time.perf_counter() - start

        async def run(count: int) -> list[float]:
            todo, latencies = iter(range(count)), []

            async def worker():
                for i in todo:  # one shared iterator: each request is taken by exactly one worker
                    latencies.append(await one(i))
            await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), limit_s)
            return latencies

        await run(warmup)
        start = time.perf_counter()
        latencies = np.array(await run(n)) * 1000
        seconds = time.perf_counter() - start
    return {"rps": n / seconds, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "seconds": seconds}


def breakdown(run_dir: str, body: bytes, repeats: int = 5) -> dict[str, float]:
    """Milliseconds (median of repeats) of each step our route takes for one batch body, in this process."""
    from climb_ray.adapters.ray_serve import PredictRequest
    from climb_ray.served_model import ServedModel

    model, steps = ServedModel.load(run_dir), {}

    def timed(name, fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        steps[name] = float(np.median(times)) * 1000
        return out

    req = timed("pydantic validate_json (ours)", lambda: PredictRequest.model_validate_json(body))
    timed("json.loads (baseline)", lambda: json.loads(body))
    x = timed("ServedModel.mixtures (checks, to array)", lambda: model.mixtures(req.mixtures, normalize=False))
    scores = timed("ServedModel.predict (LightGBM)", lambda: model.predict(x))
    timed("json.dumps of the answer", lambda: json.dumps({"predicted": scores.tolist()}))
    return steps


def cpu_model() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown"


def wait_ready(url: str, body: bytes, proc: subprocess.Popen, limit_s: float = 60) -> None:
    import requests

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the baseline server exited with {proc.returncode}")
        try:
            requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.2)
    sys.exit(f"the baseline server did not answer within {limit_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="run folder to serve (default: a synthetic one, tests.conftest.make_served_run)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batch", type=int, default=10_000, help="mixtures per batch request")
    parser.add_argument("--batch-concurrency", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-requests", type=int, default=20)
    parser.add_argument("--limit-s", type=float, default=300, help="most seconds one measured level may take")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--ray-env", nargs="+", default=[], metavar="KEY=VALUE",
                        help="environment of the Ray started here (Serve's settings, e.g. RAY_SERVE_ENABLE_DIRECT_INGRESS=1)")
    parser.add_argument("--baseline-server", nargs=2, metavar=("RUN", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        return baseline_server(args.baseline_server[0], int(args.baseline_server[1]))

    tmp = tempfile.TemporaryDirectory()
    os.environ["OMP_NUM_THREADS"] = "1"  # before LightGBM loads: 1 thread everywhere, as in the 1-CPU replica
    if args.run is None:
        from tests.conftest import make_served_run
        args.run = str(make_served_run(Path(tmp.name) / "run"))
    import ray
    import requests
    from ray import serve

    from climb_ray.adapters.ray_serve import direct_urls, start, user_config
    from climb_ray.served_model import ServedModel

    k = len(ServedModel.load(args.run).names)
    rng = np.random.default_rng(0)
    singles = [json.dumps({"weights": w.tolist()}).encode() for w in rng.dirichlet(np.ones(k), 1000)]
    batches = [json.dumps({"mixtures": rng.dirichlet(np.ones(k), args.batch).tolist()}).encode() for _ in range(4)]

    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.update(item.split("=", 1) for item in args.ray_env)
    base_port, started = free_port(), time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--baseline-server", args.run, str(base_port)], cwd=ROOT)
    results = {}
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        urls = {"ours": start(user_config(args.run), host="127.0.0.1", port=free_port()) + "/v1/predict"}
        urls.update({"direct": url + "/v1/predict" for url in direct_urls("127.0.0.1")})
        urls["bare"] = f"http://127.0.0.1:{base_port}/v1/predict"
        wait_ready(urls["bare"], singles[0], proc)
        for c in args.concurrency:
            for name, url in urls.items():
                results[f"single c={c} {name}"] = asyncio.run(
                    drive(url, singles, c, args.requests, args.warmup, args.limit_s))
        for c in args.batch_concurrency:
            for name, url in urls.items():
                r = asyncio.run(drive(url, batches, c, args.batch_requests, 2, args.limit_s))
                results[f"batch c={c} {name}"] = {**r, "mixtures_per_s": r["rps"] * args.batch}
        for name in [n for n in urls if n != "bare"]:  # ours scored them all
            check = requests.post(urls[name], data=batches[0], headers={"Content-Type": "application/json"},
                                  timeout=60).json()
            assert check["count"] == args.batch and len(check["predicted"]) == args.batch
    finally:
        serve.shutdown()  # the Ray started here, with nothing else on it
        ray.shutdown()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    steps = breakdown(args.run, batches[0])
    tmp.cleanup()

    print(f"machine: {os.cpu_count()} cores, {cpu_model()} ({platform.processor() or platform.machine()}); "
          f"Python {platform.python_version()}, Ray {ray.__version__}")
    print(f"run {args.run} ({k} clusters); ours: Ray Serve, 1 replica (1 CPU), ray.init(num_cpus=2)"
          f"{', Ray env ' + ' '.join(args.ray_env) if args.ray_env else ''}; "
          f"{'direct: the same replica at its own port; ' if 'direct' in urls else ''}"
          f"bare: FastAPI + uvicorn, 1 worker, OMP_NUM_THREADS=1; client: aiohttp, loopback")
    print(f"\n1. one mixture per request: {args.requests} requests per level after {args.warmup} warm-up")
    print(f"  {'concurrency':>11} {'server':>6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for c in args.concurrency:
        for name in urls:
            r = results[f"single c={c} {name}"]
            print(f"  {c:>11} {name:>6} {r['rps']:9.1f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
        for name in [n for n in urls if n != "bare"]:
            ratio = results[f"single c={c} {name}"]["rps"] / results[f"single c={c} bare"]["rps"]
            print(f"  {'':>11} ratio {name} / bare (req/s): {ratio:.2f}")
    print(f"\n2. batches of {args.batch:,} mixtures: {args.batch_requests} requests per level after 2 warm-up "
          f"(body {len(batches[0]) / 1e6:.2f} MB)")
    print(f"  {'concurrency':>11} {'server':>6} {'mixtures/s':>11} {'p50 ms':>8} {'p99 ms':>8}")
    best = 0.0
    for c in args.batch_concurrency:
        for name in urls:
            r = results[f"batch c={c} {name}"]
            print(f"  {c:>11} {name:>6} {r['mixtures_per_s']:11,.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}")
        best = max(best, results[f"batch c={c} ours"]["mixtures_per_s"])
        for name in [n for n in urls if n != "bare"]:
            ratio = results[f"batch c={c} {name}"]["rps"] / results[f"batch c={c} bare"]["rps"]
            print(f"  {'':>11} ratio {name} / bare (mixtures/s): {ratio:.2f}")
    print(f"  target >= {TARGET:,} mixtures/s through ours: best {best:,.0f} -> {'met' if best >= TARGET else 'NOT met'}")
    print(f"\nwhere one batch of {args.batch:,} goes, in this process, 1 thread (median of 5):")
    for step, ms in steps.items():
        print(f"  {step:<42} {ms:8.1f} ms")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "breakdown_ms": steps, "target": TARGET,
                                               "met": best >= TARGET, "ray": ray.__version__, "run": args.run,
                                               "cores": os.cpu_count(), "cpu": cpu_model(),
                                               "ray_env": args.ray_env}, indent=2))


if __name__ == "__main__":
    main()
