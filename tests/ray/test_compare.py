"""`climb-ray compare` and DoReMi on a real Ray: every method on one run's clusters, target and proxy
budget, each answer scored by evaluation proxies over seeds; a rerun keeps what is done."""

import json
import shutil

import numpy as np
import pytest

from climb_ray import compare_stage
from climb_ray.adapters import ray_doremi
from tests.conftest import tokens_config

pytestmark = pytest.mark.ray
SMALL = ["proxy.steps=8", "proxy.batch_size=8", "proxy.context=64", "proxy.warmup_steps=2", "target.max_docs=20",
         "search.schedule=[2,2]", "search.n_candidates=2000", "predictor.num_rounds=50", "search.answer=best_seen",
         "compare.seeds=2", "compare.references=[uniform]"]
PROXY_TOKENS = 4 * 8 * 8 * 64  # 4 proxies of 8 steps of 8 x 64 tokens


@pytest.fixture(scope="module")
def compared(finished, three_files, demo_corpus, tmp_path_factory):
    run = tmp_path_factory.mktemp("compare") / "run"
    shutil.copytree(finished[0], run)
    cfg = tokens_config(three_files, run, f"target.paths=[{demo_corpus.parent / 'demo_target.jsonl'}]", *SMALL)
    return cfg, run, compare_stage.compare(cfg)


def test_every_method_and_reference_is_scored_by_one_evaluation_proxy_per_seed(compared):
    cfg, run, result = compared
    table = {r["method"]: r for r in result["table"]}
    assert set(table) == {"climb", "regmix", "random", "doremi", "uniform"}
    for row in table.values():
        assert row["n"] == 2 and len(set(row["scores"])) == 2 and np.isfinite(row["scores"]).all()
        assert row["ci95"] > 0 and row["min"] <= row["mean"] <= row["max"]
        assert sum(row["weights"].values()) == pytest.approx(1.0, abs=1e-6)
    assert [r["mean"] for r in result["table"]] == sorted((r["mean"] for r in result["table"]), reverse=True)
    evals = sorted(p.name for p in (run / "compare" / "eval").glob("*.json"))
    assert evals == sorted(f"{m}-s{s}.json" for m in table for s in (1000, 1001))
    assert "| climb |" in (run / "compare" / "table.md").read_text()


def test_the_methods_spend_the_same_proxy_token_budget(compared):
    _, run, result = compared
    table = {r["method"]: r for r in result["table"]}
    for method in ("climb", "regmix", "random"):
        assert table[method]["proxy_runs"] == 4 and table[method]["proxy_tokens"] == PROXY_TOKENS
        assert table[method]["proxy_seconds"] > 0
    assert table["doremi"]["proxy_runs"] == 2 and table["doremi"]["proxy_tokens"] == PROXY_TOKENS
    doremi = json.loads((run / "doremi" / "weights.json").read_text())
    assert doremi["steps"] == 16 and table["doremi"]["weights"] == pytest.approx(doremi["weights"], abs=1e-12)
    assert (run / "compare" / "regmix" / "best_mixture.json").exists()  # the other searches have their own folders
    assert not (run / "compare" / "climb").exists()  # the run's own search is reused


def test_a_rerun_trains_only_the_proxies_that_are_missing(compared, monkeypatch):
    cfg, run, result = compared
    (run / "compare" / "eval" / "random-s1001.json").unlink()  # as if killed before this proxy finished
    trained = []
    real = ray_doremi.evaluate

    def counting(cfg, tokens_url, jobs, done):
        trained.extend(key for key, _, _ in jobs)
        return real(cfg, tokens_url, jobs, done)

    monkeypatch.setattr(ray_doremi, "evaluate", counting)
    again = compare_stage.compare(cfg)
    assert trained == ["random-s1001"]
    before = {r["method"]: r["scores"] for r in result["table"]}
    after = {r["method"]: r["scores"] for r in again["table"]}
    assert {m: sorted(s) for m, s in after.items()} == {m: sorted(s) for m, s in before.items()}  # same seeds, same scores
