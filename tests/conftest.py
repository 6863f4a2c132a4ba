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
    (200 held-out Wikipedia documents) is demo_target.jsonl beside it."""
    from climb_ray.democorpus import build_demo_corpus

    out = tmp_path_factory.mktemp("demo") / "demo_corpus.jsonl"
    build_demo_corpus(out, docs_per_source=60, seed=0, target_path=out.parent / "demo_target.jsonl")
    return out


@pytest.fixture(scope="session")
def source_shards(tmp_path_factory):
    """Token shards of the demo corpus (200 documents per source) with each source as a cluster,
    made without Ray: (tokens folder, cluster names, source of each cluster, target path)."""
    import json

    import fsspec

    from climb_ray import tokens as tk
    from climb_ray.democorpus import build_demo_corpus

    root = tmp_path_factory.mktemp("shards")
    build_demo_corpus(root / "corpus.jsonl", docs_per_source=200, seed=0, target_path=root / "target.jsonl")
    rows = [json.loads(line) for line in open(root / "corpus.jsonl")]
    sources = sorted({r["source"] for r in rows})
    tok = tk.train_bpe([r["text"] for r in rows], 2048)
    writer = tk.ShardWriter(str(root / "tokens"), tk.shard_dtype(2048))
    names = [tk.cluster_name(i) for i in range(len(sources))]
    for name, source in zip(names, sources):
        texts = [r["text"] for r in rows if r["source"] == source]
        writer.add(name, tk.encode_docs(tok, texts, tk.eot_id(tok), writer.dtype))
    tk.write_meta(fsspec.filesystem("file"), str(root / "tokens"), dtype=writer.dtype, eot=tk.eot_id(tok),
                  vocab_size=tok.get_vocab_size(), tokenizer="bpe", shards=writer.close(), names=names)
    (root / "tokens" / "tokenizer.json").write_text(tok.to_str())
    return root / "tokens", names, sources, root / "target.jsonl"


@pytest.fixture(scope="session")
def full_demo_corpus(tmp_path_factory) -> Path:
    """The demo corpus as `make demo` builds it (800 documents per source, seed 0)."""
    from climb_ray.democorpus import build_demo_corpus

    out = tmp_path_factory.mktemp("demo_full") / "demo_corpus.jsonl"
    build_demo_corpus(out, docs_per_source=800, seed=0)
    return out
