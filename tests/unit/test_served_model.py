"""What the HTTP API answers, without Ray or HTTP: request checks, the constrained optimiser, the
loaded run folder."""

import json

import numpy as np
import pytest

from climb_ray.optimize import Bounds, ConstraintError, bounds, optimize, project
from climb_ray.served_model import NotAnswerable, NotServable, RequestError, ServedModel, parse_mixture
from tests.conftest import SERVED_NAMES, make_served_run

NAMES = ["a", "b", "c"]


def test_a_mixture_is_read_from_names_or_cluster_order_and_missing_names_weigh_zero():
    assert parse_mixture({"b": 1.0}, NAMES, normalize=False).tolist() == [0, 1, 0]
    assert parse_mixture([0.2, 0.3, 0.5], NAMES, normalize=False).tolist() == pytest.approx([0.2, 0.3, 0.5])
    assert parse_mixture([2, 3, 5], NAMES, normalize=True).tolist() == pytest.approx([0.2, 0.3, 0.5])
    assert parse_mixture([0.2, 0.3, 0.4995], NAMES, normalize=False).sum() == pytest.approx(1)  # within 1e-3


@pytest.mark.parametrize("item, needle", [
    ([0.5, 0.5], "has 2 weights, clusters are 3"),
    ({"z": 1}, "unknown cluster 'z'"),
    ([float("nan"), 0.5, 0.5], "weights[0] = nan"),
    ([0.5, -0.1, 0.6], "weights[1] = -0.1"),
    ([0.5, float("inf"), 0.5], "weights[1] = inf"),
    ([0.5, 0.4, 0.0], "sum to 0.9"),
    ([0, 0, 0], "all 0"),
    ([True, 0, 0], "must be a number"),
    ("uniform", "must be an object"),
])
def test_bad_mixtures_raise_request_errors_naming_the_value(item, needle):
    with pytest.raises(RequestError) as err:
        parse_mixture(item, NAMES, normalize=False)
    assert needle in str(err.value)


def test_projection_lands_on_the_simplex_within_the_bounds_and_keeps_feasible_points():
    rng = np.random.default_rng(0)
    b = Bounds(np.array([0.1, 0.0, 0.2]), np.array([0.5, 0.3, 1.0]))
    w = project(rng.normal(size=(500, 3)) * 3, b)
    assert np.allclose(w.sum(axis=1), 1) and np.all(w >= b.lo - 1e-9) and np.all(w <= b.hi + 1e-9)
    inside = np.array([[0.3, 0.2, 0.5]])
    assert np.allclose(project(inside, b), inside)


def test_bounds_combine_min_max_exclusions_and_epoch_caps():
    tokens = np.array([1000.0, 500.0, 100.0])
    b = bounds(NAMES, minimum={"a": 0.2}, maximum={"a": 0.9}, exclude=["c"], tokens=tokens, token_budget=1000,
               max_epochs=1.5)
    assert b.lo.tolist() == [0.2, 0, 0] and b.hi.tolist() == pytest.approx([0.9, 0.75, 0.0])


@pytest.mark.parametrize("kwargs, needle", [
    ({"minimum": {"a": 0.6, "b": 0.6}}, "minimums add up to 1.2"),
    ({"exclude": NAMES}, "add up to 0"),
    ({"minimum": {"a": 0.5}, "maximum": {"a": 0.3}}, "cluster a: minimum 0.5 is above its maximum 0.3"),
    ({"maximum": {"q": 0.5}}, "max names cluster 'q'"),
    ({"minimum": {"a": float("nan")}}, "min[a] = nan"),
    ({"token_budget": 1e9, "tokens": np.ones(3), "max_epochs": 2}, "less than 1"),
    ({"token_budget": 0, "tokens": np.ones(3), "max_epochs": 2}, "token_budget = 0"),
])
def test_impossible_constraints_are_refused_naming_them(kwargs, needle):
    with pytest.raises(ConstraintError) as err:
        bounds(NAMES, **kwargs)
    assert needle in str(err.value)


def test_optimize_finds_a_known_optimum_and_the_constrained_one():
    target = np.array([0.1, 0.6, 0.3])

    def predict(x):
        return -np.abs(x - target).sum(axis=1)

    free = optimize(predict, np.ones(3) / 3, bounds(NAMES), n_candidates=20_000, rng=np.random.default_rng(0))
    assert np.abs(free["weights"] - target).sum() < 0.02
    capped = optimize(predict, np.ones(3) / 3, bounds(NAMES, maximum={"b": 0.4}), n_candidates=20_000,
                      rng=np.random.default_rng(0))
    assert capped["weights"][1] == pytest.approx(0.4, abs=1e-6) and capped["at_max"][1]
    assert capped["predicted"] == pytest.approx(-0.4, abs=0.02)  # best possible with b <= 0.4


def test_served_model_reads_a_run_folder_and_answers_best_first(tmp_path):
    run = make_served_run(tmp_path / "run")
    model = ServedModel.load(str(run), seed=0)
    assert model.names == SERVED_NAMES and model.max_epochs == 4.0
    assert model.info["trials"] == 80 and model.info["version"] == ServedModel.load(str(run)).info["version"]
    assert model.info["degenerate"] is None and model.info["members"] == 5 and model.info["held_out"] == 80
    best = model.best(3)
    assert [m["score"] for m in best["measured"]] == sorted([m["score"] for m in best["measured"]], reverse=True)
    assert best["predicted"][0]["predicted"] >= best["predicted"][-1]["predicted"]
    x = model.mixtures([[0.25] * 4, {"sc01": 2.0}], normalize=True)
    assert x[1].tolist() == [0, 1, 0, 0]
    with pytest.raises(RequestError, match=r"mixtures\[1\]: unknown cluster 'x'"):
        model.mixtures([[0.25] * 4, {"x": 1.0}], normalize=False)
    with pytest.raises(RequestError, match=r"mixtures\[0\]\[2\] = -1.0"):
        model.mixtures([[0.5, 0.5, -1.0, 1.0]], normalize=False)
    huge = model.mixtures([[1e308, 1e308, 0, 0], [1, 3, 0, 0]], normalize=True)  # past the batch fast path
    assert huge.tolist() == [[0.5, 0.5, 0, 0], [0.25, 0.75, 0, 0]]


def test_a_run_without_a_finished_search_is_not_servable_and_says_what_is_missing(tmp_path):
    run = make_served_run(tmp_path / "run")
    (run / "search" / "predictor.json").unlink()
    with pytest.raises(NotServable, match="predictor.json is missing"):
        ServedModel.load(str(run))


def test_the_predictor_sidecar_records_when_it_was_fitted(tmp_path):
    run = make_served_run(tmp_path / "run")
    sidecar = json.loads((run / "search" / "predictor.json").read_text())
    assert sidecar["fitted_at"].endswith("Z") and sidecar["format_version"] == 2


def test_a_degenerate_predictor_is_reported_by_the_model_info(tmp_path):
    """/v1/model shows it: scores in accuracy range fitted with the paper's settings do not split."""
    from climb_ray.config import PredictorConfig
    from climb_ray.predictor import Predictor

    run = make_served_run(tmp_path / "run")
    x = np.random.default_rng(0).dirichlet(np.ones(4), 64)
    paper = Predictor.fit(x, 0.55 + 0.08 * x[:, 0] - 0.05 * x[:, 3], PredictorConfig(standardize=False, ensemble=1),
                          names=SERVED_NAMES, seed=0)
    text, sidecar = paper.to_text()
    (run / "search" / "predictor.txt").write_text(text)
    (run / "search" / "predictor.json").write_text(sidecar)
    assert ServedModel.load(str(run), seed=0).info["degenerate"].startswith("nearly constant predictions")


def test_a_failed_reload_keeps_the_server_watching_and_the_next_change_reloads(tmp_path, capsys):
    """The watch loop of `climb-ray serve`: a redeploy that fails (a Serve error) is one line; the loop
    goes on, tries the same file again, and takes the next fit."""
    from climb_ray.serve_commands import _predictor_version, watch
    from climb_ray.config import Config
    from tests.conftest import write_predictor

    run = make_served_run(tmp_path)
    cfg = Config()
    cfg.run_dir, cfg.serve.watch_s = str(run), 0.01
    first = _predictor_version(str(run), "search/predictor.txt")
    calls = []

    def deploy():
        calls.append(_predictor_version(str(run), "search/predictor.txt"))
        if len(calls) <= 2:
            raise RuntimeError("the Serve controller did not answer")
        raise KeyboardInterrupt  # the third attempt works; stop the test's loop there

    write_predictor(run, (0.7, 0.1, 0.1, 0.1), seed=5)
    with pytest.raises(KeyboardInterrupt):
        watch(cfg, "search/predictor.txt", deploy, first)
    out = capsys.readouterr().out
    assert len(calls) == 3 and calls[0] != first and len(set(calls)) == 1
    assert out.count("could not reload the predictor") == 1 and "the Serve controller did not answer" in out


def test_optimize_scores_candidates_in_bounded_chunks_whatever_the_request():
    """200k candidates over 1000 clusters would be 1.6 GB at once (several times that while projecting):
    the search makes and scores them a bounded chunk at a time and keeps only the best."""
    from climb_ray.optimize import CHUNK_CELLS

    k, target = 1000, np.zeros(1000)
    target[:3] = [0.5, 0.3, 0.2]
    seen = []

    def predict(x):
        seen.append(x.shape[0])
        return -np.abs(x - target).sum(axis=1)

    prior = np.full(k, 1.0 / k)
    found = optimize(predict, prior, bounds([f"c{i}" for i in range(k)]), n_candidates=20_000,
                     rng=np.random.default_rng(0))
    assert found["candidates_scored"] == sum(seen) >= 19_990 and max(seen) * k <= CHUNK_CELLS
    assert found["weights"][:3].sum() > 0.1  # and it still climbs towards the optimum


def test_serving_beyond_loopback_without_a_token_needs_insecure(tmp_path, capsys, monkeypatch):
    from climb_ray.cli import main

    monkeypatch.delenv("CLIMB_API_TOKEN", raising=False)
    run = make_served_run(tmp_path / "run")
    assert main(["serve", "--config", "demo", f"run_dir={run}", "serve.host=0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "serve.host=0.0.0.0" in err and "--insecure" in err and err.count("\n") == 1


def test_serve_stop_without_a_cluster_address_is_one_line_naming_it(capsys, monkeypatch):
    from climb_ray.cli import main

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert main(["serve", "--stop"]) == 2
    err = capsys.readouterr().err
    assert "RAY_ADDRESS" in err and err.count("\n") == 1


# -- the objective's components (the served run records two targets: near and far) ------------------------
@pytest.fixture(scope="module")
def two_targets(tmp_path_factory):
    return ServedModel.load(str(make_served_run(tmp_path_factory.mktemp("objective") / "run")))


def test_optimize_answers_for_the_objective_weights_asked_for(two_targets):
    from tests.conftest import SERVED_FAR

    model = two_targets
    assert model.components == ["near", "far"] and model.info["components"] == ["near", "far"]
    own = model.optimize(n_candidates=4000)
    far = model.optimize(n_candidates=4000, weights={"far": 2.0})
    assert "objective" not in own and far["objective"] == {"near": 0.0, "far": 1.0}
    assert own["uncertainty"] == model.info["mae"] > 0 and far["uncertainty"] is None  # the MAE is the run's objective's
    assert far["weights"]["sc03"] > 0.5 > own["weights"]["sc03"]  # far's optimum puts 0.7 on sc03
    assert far["predicted"] == pytest.approx(far["components"]["far"])
    assert np.abs(np.array(list(far["weights"].values())) - SERVED_FAR).sum() < 0.4
    best = far["best_measured_within"]
    assert best["components"]["far"] == max(m["components"]["far"] for m in model.measured)
    assert best["objective_score"] == best["components"]["far"] != best["score"]  # score: the run's objective
    assert "objective_score" not in own["best_measured_within"]
    both = model.optimize(n_candidates=4000, weights={"near": 1, "far": 1})
    assert both["predicted"] == pytest.approx((both["components"]["near"] + both["components"]["far"]) / 2)
    mean = both["best_measured_within"]["components"]
    assert both["best_measured_within"]["objective_score"] == pytest.approx((mean["near"] + mean["far"]) / 2)


@pytest.mark.parametrize("weights, needle", [
    ({"piqa": 1.0}, "unknown component 'piqa'; components are near, far"),
    ({"far": -0.5}, "weights['far'] = -0.5"),
    ({"near": 0.0}, "the weights are all 0"),
])
def test_bad_objective_weights_are_request_errors_naming_the_value(two_targets, weights, needle):
    with pytest.raises(RequestError) as err:
        two_targets.optimize(weights=weights)
    assert not isinstance(err.value, NotAnswerable) and needle in str(err.value)  # a 400, not a 409


def test_the_pareto_front_trades_one_target_for_the_other_and_no_point_dominates_another(two_targets):
    front = two_targets.pareto()
    assert front["components"] == ["near", "far"] and len(front["front"]) >= 3
    assert front["degenerate"] == {"near": None, "far": None}
    y = np.array([[p["predicted"]["near"], p["predicted"]["far"]] for p in front["front"]])
    assert (np.diff(y[:, 0]) <= 0).all() and (np.diff(y[:, 1]) > 0).all()  # best in near first, giving it up for far
    assert front["front"][0]["weights"]["sc01"] > front["front"][-1]["weights"]["sc01"]


def test_the_components_are_fitted_once_and_the_front_is_cached_per_seed(tmp_path, monkeypatch):
    from climb_ray import served_objective

    fits = []
    fit = served_objective.fit_components
    monkeypatch.setattr(served_objective, "fit_components", lambda *a, **k: fits.append(1) or fit(*a, **k))
    model = ServedModel.load(str(make_served_run(tmp_path / "run")))
    model.optimize(n_candidates=1000, weights={"far": 1.0})
    front = model.pareto()
    assert model.pareto()["front"] is front["front"] and len(fits) == 1
    other = model.pareto(seed=1)
    assert other["front"] != front["front"] and model.pareto(seed=1)["front"] is other["front"] and len(fits) == 1


def test_too_few_measured_mixtures_or_one_target_are_409s_not_500s(tmp_path):
    import pyarrow.parquet as pq

    run = make_served_run(tmp_path / "run")
    trials = run / "search" / "trials.parquet"
    table = pq.read_table(trials)
    pq.write_table(table.slice(0, 1), trials)  # one measured mixture: no predictor fits on it
    model = ServedModel.load(str(run))
    assert model.components == ["near", "far"]
    needle = r"cannot be fitted on this run's 1 measured mixture\(s\): predictor needs at least 2 results"
    for ask in (lambda: model.optimize(n_candidates=1000, weights={"far": 1.0}), model.pareto):
        with pytest.raises(NotAnswerable, match=needle) as err:
            ask()
        assert "\n" not in str(err.value)
    pq.write_table(table.drop(["score/far"]), trials)  # one target: no trade-off
    with pytest.raises(NotAnswerable, match=r"1 recorded component\(s\) \(near\)"):
        ServedModel.load(str(run)).pareto()


def test_a_run_without_recorded_targets_refuses_objective_weights_and_the_front(tmp_path):
    import pyarrow.parquet as pq

    run = make_served_run(tmp_path / "run")
    table = pq.read_table(run / "search" / "trials.parquet")
    pq.write_table(table.drop(["score/near", "score/far"]), run / "search" / "trials.parquet")
    model = ServedModel.load(str(run))
    assert model.components == [] and "objective" not in model.optimize(n_candidates=1000)
    with pytest.raises(NotAnswerable, match="recorded no per-target scores"):
        model.optimize(weights={"near": 1.0})
    with pytest.raises(NotAnswerable, match=r"0 recorded component\(s\).*needs two target.paths"):
        model.pareto()


def test_the_command_line_and_http_read_a_mixture_with_the_same_rules():
    """One reader (mixture.mixture_from): the same weights give the same mixture from a CLI string and a
    request; huge weights keep their proportions when rescaled (no overflow to inf) in both."""
    from climb_ray.mixture import parse_weights

    assert parse_mixture({"a": 1e308, "c": 1e308}, NAMES, normalize=True).tolist() == [0.5, 0, 0.5]
    assert parse_weights("a=1e308,c=1e308", NAMES).tolist() == [0.5, 0, 0.5]
    for spec, item in [("2,1,1", [2, 1, 1]), ("b=3,a=1", {"b": 3, "a": 1})]:
        assert parse_weights(spec, NAMES).tolist() == parse_mixture(item, NAMES, normalize=True).tolist()
    with pytest.raises(RequestError, match=r"sum to inf, not 1"):
        parse_mixture([1e308, 1e308, 0], NAMES, normalize=False)
