"""Shared fixtures: one local Ray for the whole test session, started only when a test needs it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "climb_ray.cli"]


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray (2 CPUs, no dashboard, auth off) shared by every test that asks for it."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ.pop("RAY_ADDRESS", None)
    stale = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    stale.unlink(missing_ok=True)  # a dead cluster's address would make ray.init try to join it
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def run_cli(args: list[str], *, env: dict | None = None, cwd: Path | None = None, timeout: int = 300):
    """Run `climb-ray ARGS` in a fresh process as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(CLI + args, capture_output=True, text=True, env=full_env,
                          cwd=cwd or ROOT, timeout=timeout)


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    """The real demo corpus, small (60 documents per source), built once per session; its target
    (the demo's: 200 held-out documents, 70% Wikipedia and 30% Python docstrings) is demo_target.jsonl beside it."""
    from climb_ray.democorpus import build_demo_corpus

    out = tmp_path_factory.mktemp("demo") / "demo_corpus.jsonl"
    build_demo_corpus(out, docs_per_source=60, seed=0, target_path=out.parent / "demo_target.jsonl")
    return out


@pytest.fixture(scope="session")
def source_shards(tmp_path_factory):
    """Token shards of the demo corpus (200 documents per source) with each source as a cluster,
    made without Ray: (tokens folder, cluster names, source of each cluster, target path); the target
    is 200 held-out Wikipedia documents (one source: its own cluster is the best mixture)."""
    import json

    import fsspec

    from climb_ray import tokens as tk
    from climb_ray.democorpus import build_demo_corpus

    root = tmp_path_factory.mktemp("shards")
    build_demo_corpus(root / "corpus.jsonl", docs_per_source=200, seed=0, target_path=root / "target.jsonl",
                      target_mix={"wikipedia": 1.0})
    rows = [json.loads(line) for line in open(root / "corpus.jsonl")]
    sources = sorted({r["source"] for r in rows})
    tok = tk.train_bpe([r["text"] for r in rows], 2048)
    fs = fsspec.filesystem("file")
    writer = tk.PartWriter(fs, str(root / "tokens"), "00000-00000", tk.shard_dtype(2048))
    names = [tk.cluster_name(i) for i in range(len(sources))]
    for name, source in zip(names, sources):
        texts = [r["text"] for r in rows if r["source"] == source]
        writer.add(name, tk.encode_docs(tok, texts, tk.eot_id(tok), writer.dtype))
    parts = {name: [part] for name, part in writer.close().items()}
    tk.write_meta(fs, str(root / "tokens"), dtype=writer.dtype, eot=tk.eot_id(tok),
                  vocab_size=tok.get_vocab_size(), tokenizer="bpe", parts=parts, names=names)
    (root / "tokens" / "tokenizer.json").write_text(tok.to_str())
    return root / "tokens", names, sources, root / "target.jsonl"


def ready_for_search(shards, names: list[str], cfg) -> None:
    """cfg.run_dir made as if every stage up to tokens had run: `shards` (source_shards' folder) as its
    tokens, one super-cluster per name; the search stage then runs as it does after a real pipeline."""
    import shutil

    from climb_ray.artifacts import RunDir
    from climb_ray.stages.pipeline import ORDER, stage_depends

    shutil.copytree(shards, f"{cfg.run_dir}/tokens")
    rundir = RunDir(str(cfg.run_dir))
    rundir.write_json("cluster/clusters.json", {"super_clusters": [
        {"id": i, "name": n, "top_terms": [f"term{i}"]} for i, n in enumerate(names)]})
    for stage in ORDER[: ORDER.index("tokens") + 1]:
        rundir.mark_done(stage, {}, stage_depends(cfg, stage))


@pytest.fixture(scope="session")
def full_demo_corpus(tmp_path_factory) -> Path:
    """The demo corpus as `make demo` builds it (800 documents per source, seed 0)."""
    from climb_ray.democorpus import build_demo_corpus

    out = tmp_path_factory.mktemp("demo_full") / "demo_corpus.jsonl"
    build_demo_corpus(out, docs_per_source=800, seed=0)
    return out


SERVED_NAMES = ["sc00", "sc01", "sc02", "sc03"]
SERVED_FAR = (0.1, 0.1, 0.1, 0.7)  # the optimum of the served run's second target, "far" (the first, "near": optimum)


def write_predictor(run: Path, optimum, *, seed: int = 0, n: int = 80, name: str = "search/predictor") -> None:
    """Fit a real LightGBM predictor on n mixtures scored -L1(w, optimum) and write it (and, under the
    default name, the trials it was fitted on, with two targets: near = the score, far = -L1(w, SERVED_FAR))."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from climb_ray.config import PredictorConfig
    from climb_ray.predictor import Predictor

    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(len(SERVED_NAMES)), n)
    y = -np.abs(x - np.asarray(optimum)).sum(axis=1)
    model = Predictor.fit(x, y, PredictorConfig(num_rounds=200, min_child_samples=3), names=SERVED_NAMES, seed=seed)
    text, sidecar = model.to_text()
    (run / "search").mkdir(parents=True, exist_ok=True)
    (run / f"{name}.txt").write_text(text)
    (run / f"{name}.json").write_text(sidecar)
    if name != "search/predictor":  # another predictor for the same run: the measured trials stay
        return
    far = -np.abs(x - np.asarray(SERVED_FAR)).sum(axis=1)  # a second target, recorded beside the score (weight 0)
    rows = [{"trial_id": f"t{i:03d}", "index": i, "iteration": i * 3 // n,
             **{f"w_{c}": float(v) for c, v in zip(SERVED_NAMES, w)}, "score": float(s), "status": "done",
             "score/near": float(s), "score/far": float(f)} for i, (w, s, f) in enumerate(zip(x, y, far))]
    pq.write_table(pa.Table.from_pylist(rows), run / "search" / "trials.parquet")


def make_served_run(run: Path, optimum=(0.1, 0.6, 0.2, 0.1)) -> Path:
    """A run folder with what `climb-ray serve` reads, made without the pipeline: 4 super-clusters,
    token counts, a cluster report, and a real predictor fitted on a known objective."""
    import json

    tokens = {"sc00": 400_000, "sc01": 300_000, "sc02": 200_000, "sc03": 100_000}
    (run / "tokens").mkdir(parents=True, exist_ok=True)
    (run / "cluster").mkdir(parents=True, exist_ok=True)
    (run / "tokens" / "meta.json").write_text(json.dumps({
        "clusters": SERVED_NAMES, "tokens": tokens, "documents": {n: t // 500 for n, t in tokens.items()}}))
    terms = [["python", "function", "argument"], ["thou", "unto", "lord"], ["noun", "adj", "species"],
             ["says", "minister", "police"]]
    (run / "cluster" / "clusters.json").write_text(json.dumps({"super_clusters": [
        {"id": i, "name": f"sc{i:02d}-{t[0]}-{t[1]}", "top_terms": t, "examples": [f"an example of {t[0]}"],
         "mean_quality": 0.9, "map_xy": [round(0.5 * i - 0.75, 2), 0.1 * i]} for i, t in enumerate(terms)]}))
    (run / "config.yaml").write_text("search:\n  max_epochs: 4.0\npredictor:\n  num_rounds: 200\n  min_child_samples: 3\n")
    write_predictor(run, optimum)
    (run / "search" / "best_mixture.json").write_text(json.dumps({
        "answer": "best", "weights": dict(zip(SERVED_NAMES, optimum)), "predicted_score": 0.0}))
    return run


@pytest.fixture(scope="module")
def s3_bucket():
    """A fresh bucket "climb" on moto's S3 server bound to 127.0.0.1, reached through AWS_ENDPOINT_URL
    (set in this process while the module runs); yields {"url": "s3://climb", "env": the AWS_* variables}."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is missing (the test extra)")
    pytest.importorskip("s3fs", reason="s3fs is missing (the s3 extra)")
    import boto3
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # a cached instance keeps the endpoint of an earlier server
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="climb")
    yield {"url": "s3://climb", "env": env}
    server.stop()
    s3fs.S3FileSystem.clear_instance_cache()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(ray_session, tmp_path_factory):
    """The predictor of a synthetic run folder (make_served_run) on Ray Serve, on a free loopback
    port, for one test module: (base URL, run folder). Tests that reconfigure it restore it. The
    replica reserves no CPU and Serve is shut down after the module, so the shared Ray keeps both
    CPUs for the tests after it."""
    from ray import serve

    from climb_ray.adapters.ray_serve import start, user_config

    run = make_served_run(tmp_path_factory.mktemp("served") / "run")
    url = start(user_config(str(run)), host="127.0.0.1", port=free_port(), num_cpus=0)
    yield url, run
    serve.shutdown()  # Serve too (our stop() deletes only our app): the next module's proxy gets its own port


@pytest.fixture(scope="session")
def three_files(demo_corpus, tmp_path_factory):
    """The small demo corpus split into 3 files of 100 documents: 3 chunks of the tokens stage."""
    folder = tmp_path_factory.mktemp("split")
    lines = open(demo_corpus).read().splitlines()
    for part in range(3):
        (folder / f"part{part}.jsonl").write_text("\n".join(lines[part * 100:(part + 1) * 100]) + "\n")
    return folder


def tokens_overrides(folder, run):
    return [f"corpus.paths=[{folder}]", f"run_dir={run}", "embed.chunk_docs=100", "embed.max_tokens=64",
            "embed.threads=2", "cluster.k_init=20", "cluster.n_super_clusters=4", "cluster.prune_threshold=0.99",
            "tokens.vocab_size=1024", "tokens.train_docs=150"]


def tokens_config(folder, run, *more):
    from climb_ray.config_io import load_config

    return load_config(ROOT / "climb_ray" / "configs" / "demo.yaml", [*tokens_overrides(folder, run), *more])


@pytest.fixture(scope="session")
def finished(ray_session, three_files, tmp_path_factory):
    """A run folder with every stage up to tokens done (3 files, 4 super-clusters), and the tokens
    stage's summary; tests copy it before changing anything."""
    from climb_ray.stages.pipeline import run_pipeline

    run = tmp_path_factory.mktemp("tokens_run") / "run"
    report = run_pipeline(tokens_config(three_files, run), until="tokens")
    return run, report.results[-1].info
