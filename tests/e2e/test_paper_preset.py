"""The paper preset run end to end as the README's cluster command runs it (jobs/pipeline.py), with only
its sizes shrunk and the parts this machine lacks swapped (the packaged encoder, faiss for cuML), so
that the preset cannot drift from what the pipeline accepts."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SIZES = ["embed.model=all-MiniLM-L6-v2", "embed.max_tokens=64", "embed.dtype=float32", "embed.threads=2",
         "cluster.backend=faiss", "cluster.k_init=12", "cluster.fit_sample=2000",
         "cluster.n_super_clusters=4",  # Ward at 1.5 merges 12 clusters of a tiny corpus into one
         "tokens.vocab_size=512", "tokens.train_docs=200",
         "proxy.hidden_size=32", "proxy.num_layers=1", "proxy.num_heads=2", "proxy.intermediate_size=64",
         "proxy.context=32", "proxy.batch_size=2", "proxy.steps=2", "proxy.warmup_steps=1",
         "search.schedule=[2,1]", "search.n_candidates=500", "search.top_pool_min=8",
         "predictor.num_rounds=20", "target.max_docs=10", "export.token_budget=20000"]


def test_the_paper_preset_runs_through_the_pipeline_job(ray_session, demo_corpus, tmp_path):
    target = demo_corpus.parent / "demo_target.jsonl"
    run = tmp_path / "run"
    args = [sys.executable, str(ROOT / "jobs" / "pipeline.py"), "--config", "jobs/configs/paper.yaml",
            f"corpus.paths=[{demo_corpus}]", f"target.paths=[{target}]", f"run_dir={run}", *SIZES]
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ["corpus", "embed", "cluster", "tokens", "search", "export"]:
        assert f"  {stage:<9} done:" in proc.stdout, proc.stdout
    assert "search    done: 3 proxy trials in 2 iteration(s) (0 failed)" in proc.stdout, proc.stdout
    config = (run / "config.yaml").read_text()
    assert "trust_remote_code: true" in config and "acquisition: paper" in config  # the preset's own values
    best = json.loads((run / "search" / "best_mixture.json").read_text())
    assert abs(sum(best["weights"].values()) - 1.0) < 1e-6
    assert (run / "export" / "manifest.json").is_file()
