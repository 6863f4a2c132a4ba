import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from climb_ray.bench_search import benchmark, climb_schedule, load_pool, write_json
from climb_ray.config import PredictorConfig
from tests.conftest import ROOT, run_cli

REGMIX = next((p for p in (ROOT.parent / "shared", Path("/work/shared")) if (p / "benchmarks" / "regmix").is_dir()),
              ROOT.parent / "shared") / "benchmarks" / "regmix"  # beside the checkout, or the team's shared folder


@pytest.fixture()
def pool_csv(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(4) * 0.5, size=150)
    loss = np.abs(w - [0.1, 0.6, 0.2, 0.1]).sum(axis=1) + rng.normal(0, 0.01, 150)
    table = pd.DataFrame(w, columns=["a", "b", "c", "d"])
    table.insert(0, "index", range(150))
    table["loss_t"], table["score_x"] = loss, 0.0
    table.to_csv(tmp_path / "pool.csv", index=False)
    return tmp_path / "pool.csv", loss


def test_schedule_splits_the_budget_like_the_papers_64_32_16():
    assert climb_schedule(112) == [64, 32, 16] and climb_schedule(32) == [18, 9, 5] and sum(climb_schedule(50)) == 50


def test_weight_columns_are_all_but_index_loss_and_score(pool_csv):
    weights, values, names = load_pool([str(pool_csv[0])], "loss_t")
    assert names == ["a", "b", "c", "d"] and weights.shape == (150, 4)


def test_every_method_answers_with_a_pool_row_and_regrets_are_measured_from_the_pool_best(pool_csv, tmp_path):
    path, loss = pool_csv
    report = benchmark([str(path)], "loss_t", mode="min", budgets=[10, 30], seeds=4,
                       methods=["climb", "regmix", "random", "optuna"], predictor=PredictorConfig(num_rounds=100))
    assert report["pool_best"] == pytest.approx(loss.min()) and report["pool_size"] == 150
    achievable = set(np.round(loss - loss.min(), 12))
    for method, by_budget in report["results"].items():
        for budget, result in by_budget.items():
            assert len(result["per_seed"]) == 4
            for run in result["per_seed"]:
                assert round(run["regret"], 12) in achievable and run["best_seen_regret"] >= 0
            assert result["regret_mean"] == pytest.approx(np.mean([r["regret"] for r in result["per_seed"]]))
    # more evaluations never make the best seen worse for random search with the same seeds
    assert report["results"]["random"][30]["best_seen_regret_mean"] <= report["results"]["random"][10]["best_seen_regret_mean"]
    write_json(report, str(tmp_path / "out.json"))
    saved = json.loads((tmp_path / "out.json").read_text())
    assert set(saved) >= {"target", "mode", "pool_best", "results"}
    assert set(saved["results"]["climb"]["10"]["per_seed"][0]) == {"seed", "regret", "best_seen_regret", "answer_row",
                                                                "best_seen_row"}
    assert set(saved["results"]["climb"]["10"]) == {"regret_mean", "regret_ci95", "best_seen_regret_mean",
                                                    "best_seen_regret_ci95", "per_seed"}


@pytest.mark.skipif(not REGMIX.is_dir(), reason="needs ../shared/benchmarks/regmix")
def test_bench_search_command_on_the_regmix_runs_and_its_errors(tmp_path):
    args = ["bench-search", "--runs", str(REGMIX / "runs_1m_train.csv"), "--target", "loss_hackernews",
            "--budgets", "8,16", "--seeds", "2", "--methods", "climb,random", "--json", str(tmp_path / "b.json"),
            "predictor.num_rounds=50"]
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stderr
    assert "target loss_hackernews (min), pool of 512 rows" in proc.stdout
    assert json.loads((tmp_path / "b.json").read_text())["results"]["random"]["16"]["per_seed"][1]["seed"] == 1
    bad = run_cli(args[:3] + ["--target", "loss_nope"])
    assert bad.returncode == 2 and "--target 'loss_nope' is not a column" in bad.stderr
    bad = run_cli(args + ["--methods", "climb,simulated_annealing"])
    assert bad.returncode == 2 and "--methods simulated_annealing" in bad.stderr
    bad = run_cli(args + ["--noise", "-1"])
    assert bad.returncode == 2 and "--noise -1.0: must be a finite standard deviation" in bad.stderr


def test_noisy_evaluations_draw_fresh_noise_per_call_and_regret_is_judged_on_the_noiseless_value(pool_csv):
    from climb_ray.bench_search import Evaluator

    scores = -pool_csv[1]
    evaluate = Evaluator(scores, 0.05, seed=3)
    first, again = evaluate(7), evaluate(7)
    assert first != again and abs(first - scores[7]) < 0.3 and evaluate.measured[7] == [first, again]
    assert Evaluator(scores, 0.05, seed=3)(7) == first and Evaluator(scores, 0.0, seed=3)(7) == scores[7]
    path, loss = pool_csv
    report = benchmark([str(path)], "loss_t", mode="min", budgets=[20], seeds=3, methods=["climb", "random"],
                       predictor=PredictorConfig(num_rounds=100), noise=0.05)
    assert report["noise"] == 0.05
    for result in report["results"].values():
        for run in result[20]["per_seed"]:
            assert run["regret"] == pytest.approx(loss[run["answer_row"]] - loss.min())
            assert run["best_seen_regret"] == pytest.approx(loss[run["best_seen_row"]] - loss.min())


def test_answer_rows_index_the_pool_after_rows_with_missing_values_are_dropped(tmp_path, pool_csv):
    table = pd.read_csv(pool_csv[0])
    table.loc[[0, 5], "loss_t"] = np.nan
    table.to_csv(tmp_path / "gaps.csv", index=False)
    weights, values, _ = load_pool([str(tmp_path / "gaps.csv")], "loss_t")
    assert len(values) == 148
    report = benchmark([str(tmp_path / "gaps.csv")], "loss_t", mode="min", budgets=[12], seeds=2,
                       methods=["random"], predictor=PredictorConfig(num_rounds=50))
    for run in report["results"]["random"][12]["per_seed"]:
        assert run["regret"] == pytest.approx(values[run["answer_row"]] - values.min())


def test_a_negative_or_infinite_noise_is_refused(pool_csv):
    for bad in (-0.1, float("inf")):
        with pytest.raises(ValueError, match="--noise"):
            benchmark([str(pool_csv[0])], "loss_t", mode="min", budgets=[10], seeds=1, methods=["random"], noise=bad)
