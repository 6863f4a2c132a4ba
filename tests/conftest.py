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
    """The real demo corpus, small (60 documents per source), built once per session."""
    from climb_ray.democorpus import build_demo_corpus

    out = tmp_path_factory.mktemp("demo") / "demo_corpus.jsonl"
    build_demo_corpus(out, docs_per_source=60, seed=0)
    return out


@pytest.fixture(scope="session")
def full_demo_corpus(tmp_path_factory) -> Path:
    """The demo corpus as `make demo` builds it (800 documents per source, seed 0)."""
    from climb_ray.democorpus import build_demo_corpus

    out = tmp_path_factory.mktemp("demo_full") / "demo_corpus.jsonl"
    build_demo_corpus(out, docs_per_source=800, seed=0)
    return out
