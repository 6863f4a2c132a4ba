"""`climb-ray compare` and DoReMi on a real Ray: every method on one run's clusters, target and proxy
budget, each answer scored by evaluation proxies over seeds; a rerun keeps what is done."""

import json
import shutil

import numpy as np
import pytest

from climb_ray.stages import compare as compare_stage
from climb_ray.adapters import ray_doremi
from tests.conftest import tokens_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SMALL = ["proxy.steps=8", "proxy.batch_size=8", "proxy.context=64", "proxy.warmup_steps=2", "target.max_docs=20",
         "search.schedule=[2,2]", "search.n_candidates=2000", "predictor.num_rounds=50", "search.answer=best_seen",
         "compare.seeds=2", "compare.references=[uniform]", "compare.search_seeds=1"]
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
    evals = [json.loads(p.read_text()) for p in (run / "compare" / "eval").glob("*.json")]
    for row in table.values():  # each score is an evaluation proxy kept with its mixture and seed
        kept = {e["seed"]: e["score"] for e in evals
                if e["weights"] == pytest.approx(list(row["weights"].values()), abs=1e-12)}
        assert kept == dict(zip((1000, 1001), row["scores"]))
    assert len(evals) == 2 * len({tuple(np.round(list(r["weights"].values()), 12)) for r in table.values()})
    assert "| climb |" in (run / "compare" / "table.md").read_text()
    assert (run / "compare" / "table.png").read_bytes()[:4] == b"\x89PNG"


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
    assert not (run / "compare" / "climb" / "best_mixture.json").exists()  # the run's own search is reused


def test_a_rerun_trains_only_the_proxies_that_are_missing(compared, monkeypatch):
    cfg, run, result = compared
    weights = list({r["method"]: r for r in result["table"]}["random"]["weights"].values())
    random = [p for p in (run / "compare" / "eval").glob("*-s1001.json")
              if json.loads(p.read_text())["weights"] == pytest.approx(weights, abs=1e-12)]
    random[0].unlink()  # as if killed before this proxy finished (random's answer may be climb's too)
    trained = []
    real = ray_doremi.evaluate

    def counting(cfg, tokens_url, jobs, done):
        trained.extend(key for key, *_ in jobs)
        return real(cfg, tokens_url, jobs, done)

    monkeypatch.setattr(ray_doremi, "evaluate", counting)
    again = compare_stage.compare(cfg)
    assert trained == [random[0].stem]
    before = {r["method"]: r["scores"] for r in result["table"]}
    after = {r["method"]: r["scores"] for r in again["table"]}
    assert {m: sorted(s) for m, s in after.items()} == {m: sorted(s) for m, s in before.items()}  # same seeds, same scores


def counting_evaluations(monkeypatch) -> list[str]:
    """The labels of the evaluation proxies trained from now on (one per proxy)."""
    trained, real = [], ray_doremi.evaluate

    def counting(cfg, tokens_url, jobs, done):
        def noted(key, result):
            trained.append(key)
            done(key, result)
        return real(cfg, tokens_url, jobs, noted)

    monkeypatch.setattr(ray_doremi, "evaluate", counting)
    return trained


@pytest.fixture(scope="module")
def seeded(compared, three_files, demo_corpus):
    """The same run compared again with two search seeds for CLIMB and random: (cfg, run, result, the
    evaluation proxies this trained, read back as {label, seed})."""
    _, run, _ = compared
    cfg = tokens_config(three_files, run, f"target.paths=[{demo_corpus.parent / 'demo_target.jsonl'}]", *SMALL,
                        "compare.methods=[climb,random]", "compare.search_seeds=2")
    with pytest.MonkeyPatch.context() as patch:
        trained = counting_evaluations(patch)
        result = compare_stage.compare(cfg)
    labels = [json.loads((run / "compare" / "eval" / f"{key}.json").read_text()) for key in trained]
    return cfg, run, result, [(e["label"], e["seed"]) for e in labels]


def test_each_search_seed_is_a_search_of_its_own_and_the_interval_is_across_their_answers(seeded, compared):
    import pyarrow.parquet as pq
    from scipy import stats

    cfg, run, result, trained = seeded
    first = {r["method"]: r for r in compared[2]["table"]}
    table = {r["method"]: r for r in result["table"]}
    assert set(table) == {"climb", "random", "uniform"}
    for method, own in (("climb", "search"), ("random", "compare/random")):
        again = run / "compare" / method / "seed-1"
        assert json.loads((again / "_DONE").read_text())["depends"]["seed"] == cfg.seed + 1
        one, two = (pq.read_table(run / own / "trials.parquet").to_pandas(),
                    pq.read_table(again / "trials.parquet").to_pandas())
        w = [c for c in one.columns if c.startswith("w_")]
        assert len(one) == len(two) == 4 and not np.allclose(one[w].to_numpy(), two[w].to_numpy())
        row = table[method]
        per_seed = [a["scores"] for a in row["search_seeds"]]
        assert row["searches"] == row["n"] == 2 and row["over"] == "search seeds"
        assert per_seed[0] == first[method]["scores"]  # search seed 0: the answer and proxies of before
        means = [np.mean(s) for s in per_seed]
        assert row["scores"] == pytest.approx(means) and row["mean"] == pytest.approx(np.mean(means))
        assert row["ci95"] == pytest.approx(stats.t.ppf(0.975, 1) * np.std(means, ddof=1) / np.sqrt(2))
        assert row["eval_sd"] == pytest.approx(np.mean([np.std(s, ddof=1) for s in per_seed]))
        assert row["proxy_runs"] == 4 and row["proxy_tokens"] == PROXY_TOKENS
    assert table["uniform"]["over"] == "evaluation seeds" and table["uniform"]["scores"] == first["uniform"]["scores"]
    assert {label for label, _ in trained} <= {"climb/seed-1", "random/seed-1"} and len(trained) <= 4  # seed 1 only
    assert "2 search seeds" in (run / "compare" / "table.md").read_text()
    assert json.loads((run / "compare" / "results.json").read_text())["run_seeds"] == [cfg.seed, cfg.seed + 1]


def test_a_rerun_with_search_seeds_trains_nothing_new(seeded, monkeypatch):
    cfg, run, result, _ = seeded
    trained = counting_evaluations(monkeypatch)
    searched = []
    monkeypatch.setattr(compare_stage, "search_stage", lambda *args, **kw: searched.append(kw) or {})
    again = compare_stage.compare(cfg)
    assert trained == [] and searched == []
    assert again["table"] == result["table"]


def test_a_mixture_two_answers_share_is_trained_once_per_evaluation_seed(compared, monkeypatch):
    cfg, run, _ = compared
    names = json.loads((run / "tokens" / "meta.json").read_text())["clusters"]
    shared = {names[0]: 0.25, names[-1]: 0.75}  # no method answered this
    trained = counting_evaluations(monkeypatch)
    scores = compare_stage.evaluate_all(cfg, compare_stage.RunDir(str(run)),
                                        {"a": {"weights": dict(shared)}, "b": {"weights": dict(shared)}})
    assert len(trained) == 2 and scores["a"] == scores["b"] and None not in scores["a"]
