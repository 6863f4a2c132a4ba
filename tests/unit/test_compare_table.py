"""The comparison table without Ray: each answer scored by the mean of its evaluation proxies; the
interval is across search seeds when a method was searched with several, else across evaluation seeds."""

import numpy as np
import pytest
from scipy import stats

from climb_ray.compare import format_table, rows, table_png

COMPUTE = {"proxy_runs": 16, "proxy_tokens": 1_310_720, "proxy_seconds": 250.0}


def answer(top: str, seconds: float = 250.0) -> dict:
    weights = {"sc00": 0.1, "sc01": 0.1, top: 0.8} if top != "sc00" else {"sc00": 0.8, "sc01": 0.2}
    return {"weights": weights, "compute": {**COMPUTE, "proxy_seconds": seconds}}


def test_with_several_search_seeds_the_interval_is_across_the_answers_mean_scores():
    evals = [[-7.0, -7.2], [-6.8, -6.9], [-7.4, -7.3]]  # three search seeds, two evaluation proxies each
    table = rows({"climb": [answer("sc01", 240), answer("sc02", 250), answer("sc01", 260)]}, {"climb": evals})
    row = table[0]
    means = [np.mean(e) for e in evals]
    half = stats.t.ppf(0.975, 2) * np.std(means, ddof=1) / np.sqrt(3)
    assert row["scores"] == pytest.approx(means) and row["mean"] == pytest.approx(np.mean(means))
    assert row["n"] == 3 and row["over"] == "search seeds" and row["ci95"] == pytest.approx(half)
    assert row["eval_sd"] == pytest.approx(np.mean([np.std(e, ddof=1) for e in evals]))
    assert row["searches"] == 3 and row["proxy_runs"] == 16 and row["proxy_seconds"] == pytest.approx(250.0)
    assert [a["scores"] for a in row["search_seeds"]] == evals
    assert row["top"].count(" / ") == 2  # each answer's largest weights


def test_one_search_seed_and_the_references_keep_the_interval_across_evaluation_seeds():
    table = rows({"climb": [answer("sc01")], "uniform": [{"weights": {"sc00": 0.5, "sc01": 0.5}}]},
                 {"climb": [[-7.0, -7.1, -6.9]], "uniform": [[-7.5, -7.6, -7.4]]})
    climb, uniform = table
    for row, scores in ((climb, [-7.0, -7.1, -6.9]), (uniform, [-7.5, -7.6, -7.4])):
        assert row["scores"] == scores and row["over"] == "evaluation seeds" and row["n"] == 3
        assert row["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * np.std(scores, ddof=1) / np.sqrt(3))
    assert climb["searches"] == 1 and uniform["searches"] == 0 and "proxy_runs" not in uniform
    text = format_table(table, seeds=3, proxy="2 layers x 128")
    assert "over 3 seeds" in text and "| uniform | -7.5000 |" in text and "| 0 | 0 | 0 |" in text


def test_the_table_says_the_interval_is_across_search_seeds_and_ranks_by_mean():
    table = rows({"random": [answer("sc01"), answer("sc01")], "climb": [answer("sc02"), answer("sc02")],
                  "prior": [{"weights": {"sc00": 1.0}}]},
                 {"random": [[-7.2, -7.3], [-7.1, -7.2]], "climb": [[-6.9, -7.0], [-6.8, -6.9]],
                  "prior": [[-7.5, -7.6]]})
    assert [r["method"] for r in table] == ["climb", "random", "prior"]
    text = format_table(table, seeds=2, proxy="2 layers x 128")
    assert "2 search seeds" in text and "95% t-interval across search seeds" in text
    assert text.splitlines()[2].startswith("| method | score | 95% interval | searches | eval sd |")
    assert "| climb | -6.9000 | [-7.5353, -6.2647] | 2 | 0.0707 | 16 | 1.31M | 250 |" in text


def test_the_table_is_drawn_as_a_chart(tmp_path):
    import matplotlib.image

    evals = [[-7.0, -7.2], [-6.8, -6.9], [-7.4, -7.3]]
    table = rows({"climb": [answer("sc01"), answer("sc02"), answer("sc01")],
                  "uniform": [{"weights": {"sc00": 0.5, "sc01": 0.5}}]},
                 {"climb": evals, "uniform": [[-7.5, -7.6, -7.4]]})
    path = tmp_path / "table.png"
    path.write_bytes(table_png(table))
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width == 770 and height == int((1.2 + 0.5 * 2) * 110)  # one row per method, 110 dpi
