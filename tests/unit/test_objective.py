"""The objective as components: names, recombining recorded scores, the Pareto front, and a change of
target.weights re-answered from the recorded trials without training a proxy (no Ray)."""

import io
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from climb_ray.artifacts import CLUSTERS, TOKENS_META, RunDir, StageChangedError
from climb_ray.config import Config
from climb_ray.objective import (ObjectiveError, combine, component_names, objective_weights, pareto_front, recorded,
                                 reweight, reweightable, shares)
from climb_ray.search import Trial
from climb_ray.stages.pipeline import ANSWER_FIELDS, stage_depends
from climb_ray.stages.search_plan import RECORD, STATE, prepare_search, run_search_stage, with_schedule

NAMES = ["sc00", "sc01", "sc02", "sc03"]
OPTIMA = {"a": np.array([0.7, 0.1, 0.1, 0.1]), "b": np.array([0.1, 0.1, 0.1, 0.7])}


def test_components_are_named_by_file_stem_and_a_repeated_stem_by_its_position():
    assert component_names(["data/piqa.jsonl", "held/out.jsonl.gz", "texts/", "x/val.parquet", "y/val.parquet"]) == [
        "piqa", "out", "texts", "val", "val-4"]


def test_a_suffixed_name_that_is_taken_too_is_suffixed_again():
    paths = ["val-2.jsonl", "a/val.jsonl", "b/val.jsonl"]
    assert component_names(paths) == ["val-2", "val", "val-2-2"]
    assert component_names(paths) == component_names(list(paths))  # the same paths, the same names


def test_combining_components_is_the_weighted_mean_and_equal_weights_by_default():
    assert combine([1.0, 3.0], shares([], 2)) == 2.0
    assert combine([1.0, 3.0], shares([3.0, 1.0], 2)) == pytest.approx(1.5)
    assert combine([1.0, 3.0], shares([1e308, 1e308], 2)) == 2.0  # no overflow


@pytest.mark.parametrize("given, needle", [
    ({"c": 1.0}, "unknown component 'c'; components are a, b"),
    ({"a": -1.0}, "weights['a'] = -1.0"),
    ({"a": float("nan")}, "weights['a'] = nan"),
    ({"a": 0.0, "b": 0}, "all 0"),
    ({"a": True}, "weights['a'] = True"),
])
def test_bad_objective_weights_name_the_bad_value(given, needle):
    with pytest.raises(ObjectiveError) as err:
        objective_weights(given, ["a", "b"])
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_objective_weights_leave_out_components_as_zero():
    assert objective_weights({"b": 2.0}, ["a", "b"]).tolist() == [0.0, 1.0]


def test_the_pareto_front_of_a_hand_made_case():
    points = np.array([[1, 5], [2, 4], [2, 3], [3, 1], [0, 6], [2, 4], [1, 1], [3, 0.5], [np.nan, 9]])
    # [2, 3] and [1, 1] are dominated by [2, 4]; the second [2, 4] repeats the first; [3, 0.5] loses to [3, 1]
    assert pareto_front(points).tolist() == [3, 1, 0, 4]
    three = np.array([[1, 1, 1], [1, 1, 0], [0, 0, 2], [1, 0, 1]])
    assert sorted(pareto_front(three).tolist()) == [0, 2]


def test_reweighting_recombines_each_measured_trials_score_and_a_single_score_has_no_components():
    trials = [Trial(np.ones(2) / 2, 0, 0.5, "done", components={"a": 0.2, "b": 0.8}),
              Trial(np.ones(2) / 2, 0, float("nan"), "failed")]
    assert recorded(trials) == ["a", "b"]
    reweight(trials, ["a", "b"], [3.0, 1.0])
    assert trials[0].score == pytest.approx(0.35) and trials[1].status == "failed"
    assert recorded(trials + [Trial(np.ones(2) / 2, 0, 0.1, "done")]) is None  # proxy.command's score alone


def test_trials_are_reweightable_when_each_target_of_the_config_was_recorded_and_no_command_scores():
    cfg = Config()
    cfg.target.paths = ["t/a.jsonl", "t/b.jsonl"]
    trials = [Trial(np.ones(2) / 2, 0, 0.5, "done", components={"a": 0.2, "b": 0.8})]
    assert reweightable(cfg, trials) and reweightable(cfg, [{"status": "done", "components": {"a": 0.2, "b": 0.8}}])
    cfg.target.paths = ["t/a.jsonl", "t/c.jsonl"]
    assert not reweightable(cfg, trials)  # c was not recorded
    cfg.target.paths, cfg.proxy.command = ["t/a.jsonl"], "python train.py"
    assert not reweightable(cfg, trials)


# -- re-weighting a finished search, no Ray -----------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run folder whose search (schedule [8, 4]) finished with two targets a and b of equal weight; each
    trial's target scores are -L1 distances to OPTIMA, told in-process (no proxy); tests copy it."""
    from climb_ray.stages.search import make_search, write_outputs

    cfg = Config(run_dir=str(tmp_path_factory.mktemp("objective") / "run"))
    cfg.target.paths = ["t/a.jsonl", "t/b.jsonl"]
    cfg.search.n_candidates, cfg.predictor.num_rounds = 500, 50
    cfg = with_schedule(cfg, [8, 4])
    run = RunDir(cfg.run_dir)
    meta = {"clusters": NAMES, "tokens": {n: 10**9 for n in NAMES}, "documents": {n: 1000 for n in NAMES}}
    run.write_json(TOKENS_META, meta)
    run.write_json(CLUSTERS, {"super_clusters": [{"id": i, "top_terms": [f"t{i}"]} for i in range(4)]})
    search = make_search(cfg, meta)
    while not search.finished:
        for index, w in search.ask(100):
            parts = {k: float(-np.abs(w - o).sum()) for k, o in OPTIMA.items()}
            search.tell(index, combine(list(parts.values()), shares([], 2)), parts)
    run.write_json(f"search/{RECORD}", {"schedule": [8, 4], "experiments": [{"name": "climb", "iterations": [8, 4]}]})
    run.write_json(f"search/{STATE}", {"experiment": "climb", "iterations": [8, 4], "search": search.state(),
                                       "trial_ids": {}})
    run.mark_done("search", write_outputs(run, search, {}, run.read_json(CLUSTERS)), stage_depends(cfg, "search"))
    return cfg, run


def copied(finished, tmp_path):
    import copy
    import shutil

    cfg, run = finished
    shutil.copytree(run.url(), tmp_path / "run")
    cfg = copy.deepcopy(cfg)
    cfg.run_dir = str(tmp_path / "run")
    return cfg, RunDir(cfg.run_dir)


def rerun(cfg, run):
    cfg = prepare_search(cfg, run)
    return run_search_stage(cfg, run, stage_depends(cfg, "search"), lambda: pytest.fail("no proxy may train"),
                            redo=False, answer_fields=ANSWER_FIELDS)


def trials_table(run):
    return pq.read_table(io.BytesIO(run.read_bytes("search/trials.parquet"))).to_pylist()


def test_each_trial_records_each_targets_score_beside_the_combined_one(finished):
    cfg, run = finished
    rows = trials_table(run)
    assert len(rows) == 12 and {"score/a", "score/b"} <= set(rows[0])
    assert all(r["score"] == pytest.approx((r["score/a"] + r["score/b"]) / 2) for r in rows)
    assert run.exists("search", "pareto.png")


def test_changing_only_target_weights_reanswers_from_the_recorded_trials_without_training(finished, tmp_path):
    cfg, run = copied(finished, tmp_path)
    before = trials_table(run)
    cfg.target.weights = [1.0, 0.0]  # only target a counts now
    start = time.perf_counter()
    result = rerun(cfg, run)
    seconds = time.perf_counter() - start
    after = trials_table(run)
    assert result.info["reanswered"]["changed"] == ["target.weights"] and seconds < 30
    assert len(after) == len(before) == 12  # no new trial
    assert all(r["score"] == r["score/a"] for r in after) and [r["score/a"] for r in after] == [
        r["score/a"] for r in before]
    best = run.read_json("search/best_mixture.json")
    assert best["best_seen"]["score"] == max(r["score/a"] for r in after)
    assert run.read_json("search/_DONE")["depends"]["target"]["weights"] == [1.0, 0.0]
    assert rerun(cfg, run).skipped  # the new weights are now the stage's settings


def test_a_search_whose_trials_recorded_no_targets_cannot_be_reweighted_and_says_so(finished, tmp_path):
    cfg, run = copied(finished, tmp_path)
    state = run.read_json(f"search/{STATE}")
    for trial in state["search"]["trials"]:  # as a search made before they were recorded
        trial.pop("components")
    run.write_json(f"search/{STATE}", state)
    cfg.target.weights = [1.0, 0.0]
    with pytest.raises(StageChangedError, match=r"target\.weights.*did not record each target's score.*--redo search"):
        rerun(cfg, run)
    cfg.target.weights, cfg.target.paths = [1.0, 1.0], ["t/a.jsonl", "t/c.jsonl"]  # another target: as before
    with pytest.raises(StageChangedError, match=r"other settings \(target\)"):
        rerun(cfg, run)
