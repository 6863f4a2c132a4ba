"""The search on a real Ray Tune: iterations, failures, outputs. Shards: the demo sources as clusters."""

import glob
import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from climb_ray.adapters.ray_tune import run_search
from climb_ray.artifacts import RunDir
from climb_ray.config_io import load_config
from climb_ray.samplers import PoolSampler, fresh_mask
from climb_ray.search import ClimbSearch
from climb_ray.stages.search import write_outputs
from tests.conftest import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow]
FAST = ["proxy.steps=4", "proxy.batch_size=8", "proxy.context=64", "target.max_docs=20", "proxy.threads=1",
        "search.n_candidates=2000", "predictor.num_rounds=50", "search.max_concurrent_trials=2"]


def config(target, *extra):
    return load_config(ROOT / "climb_ray" / "configs" / "demo.yaml", [f"target.paths=[{target}]", *FAST, *extra])


def clusters(names):
    return {"super_clusters": [{"id": i, "top_terms": [f"term{i}"]} for i in range(len(names))]}


def failures_by_index(storage):
    """num_failures of each trial in Tune's experiment state, by our trial index."""
    state = json.load(open(sorted(glob.glob(os.path.join(storage, "climb", "experiment_state-*.json")))[-1]))
    out = {}
    for entry in state["trial_data"]:
        trial = json.loads(entry[0])
        meta = json.loads(entry[1]) if len(entry) > 1 and isinstance(entry[1], str) else {}
        out[trial["config"]["index"]] = meta.get("num_failures", 0)
    return out


def test_tune_runs_each_iteration_after_the_last_and_writes_the_outputs(ray_session, source_shards, tmp_path):
    folder, names, sources, target = source_shards
    cfg = config(target, "search.schedule=[3,2]")
    from climb_ray.stages.search import make_search

    meta = json.load(open(folder / "meta.json"))
    search, ids = run_search(cfg, make_search(cfg, meta), str(folder), str(tmp_path / "tune"))
    assert [t.status for t in search.trials] == ["done"] * 5 and search.finished
    assert [t.iteration for t in search.trials] == [0, 0, 0, 1, 1]
    weights = np.array([t.weights for t in search.trials])
    # new mixtures but the declared repeat (iteration 1 re-measures the best one with a new proxy seed)
    assert all(fresh_mask(weights[i:i + 1], weights[:i]).all() == (search.trials[i].repeat == 0) for i in range(1, 5))
    assert len(set(ids.values())) == 5
    run = RunDir(str(tmp_path / "run"))
    written, write_text = [], run.write_text
    run.write_text = lambda rel, text: (written.append(rel), write_text(rel, text))[1]  # the real write, noted
    info = write_outputs(run, search, ids, clusters(names))
    # the sidecar first: a server watching predictor.txt reloads a model whose sidecar is already there
    assert written.index("search/predictor.json") < written.index("search/predictor.txt")
    table = pq.read_table(tmp_path / "run" / "search" / "trials.parquet").to_pandas()
    assert list(table["iteration"]) == [0, 0, 0, 1, 1] and set(table["status"]) == {"done"}
    assert {f"w_{n}" for n in names} <= set(table.columns)
    best = json.loads((tmp_path / "run" / "search" / "best_mixture.json").read_text())
    assert sum(best["weights"].values()) == pytest.approx(1.0, abs=1e-5)
    assert best["best_seen"]["score"] == pytest.approx(max(g.mean for g in search.measured()))
    assert list(table["repeat"]) == [t.repeat for t in search.trials]
    for png in ("score_by_iteration.png", "final_weights.png", "predicted_vs_measured.png",
                "predictor_fit_by_iteration.png"):
        assert (tmp_path / "run" / "search" / png).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "run" / "search" / "predictor.txt").read_text().startswith("tree")
    assert info.trials == 5 and info.failed == 0


def test_a_trial_that_keeps_failing_is_retried_then_recorded_and_the_search_completes(ray_session, source_shards,
                                                                                      tmp_path):
    folder, names, sources, target = source_shards
    tokens = np.array(list(json.load(open(folder / "meta.json"))["tokens"].values()), dtype=float)
    k, budget = len(names), 4 * 8 * 64
    even, single = budget / k / tokens.min(), budget / tokens[:2].max()  # passes over a cluster
    assert even < single
    cap = float(np.sqrt(even * single))
    cfg = config(target, "search.schedule=[3,2]", "search.max_failures=1", f"search.max_epochs={cap}", "search.remeasure_fraction=0")
    # a pool of 5 mixtures: 2 put all weight on one cluster, past search.max_epochs (so they fail),
    # and 3 spread evenly (under the cap)
    rows = np.vstack([np.eye(k)[0], np.eye(k)[1], np.full((3, k), 1 / k) + np.eye(k)[:3] * 1e-3])
    rows /= rows.sum(axis=1, keepdims=True)
    search = ClimbSearch(PoolSampler(rows), names, cfg.search, cfg.predictor, seed=0)
    search, ids = run_search(cfg, search, str(folder), str(tmp_path / "tune"))
    failed = [i for i, t in enumerate(search.trials) if t.status == "failed"]
    assert len(failed) == 2 and all(np.max(search.trials[i].weights) == 1.0 for i in failed)
    assert search.finished and sum(t.status == "done" for t in search.trials) == 3
    retries = failures_by_index(str(tmp_path / "tune"))
    assert all(retries[i] == 2 for i in failed), retries  # the first attempt and one retry


def test_optuna_baseline_runs_through_ray_tune_and_answers_with_the_best_seen(ray_session, source_shards, tmp_path):
    folder, names, sources, target = source_shards
    cfg = config(target, "search.schedule=[2,2]", "search.method=optuna")
    from climb_ray.stages.search import make_search

    search, ids = run_search(cfg, make_search(cfg, json.load(open(folder / "meta.json"))), str(folder),
                             str(tmp_path / "tune"))
    assert len(search.trials) == 4 and all(t.status == "done" for t in search.trials) and search.finished
    assert all(abs(t.weights.sum() - 1) < 1e-9 for t in search.trials)
    answer = search.answer()
    assert answer["source"] == "best_seen" and answer["predicted"] == max(t.score for t in search.trials)


def test_searcher_save_restore_continue_suggests_what_the_uninterrupted_searcher_does(tmp_path):
    from ray.tune.search import Searcher

    from climb_ray.adapters.ray_tune import ClimbSearcher
    from climb_ray.config import PredictorConfig, SearchConfig
    from climb_ray.samplers import RegMixSampler

    def searcher():
        search = ClimbSearch(RegMixSampler(np.array([0.4, 0.3, 0.2, 0.1])), ["sc00", "sc01", "sc02", "sc03"],
                             SearchConfig(schedule=[4, 3, 2], n_candidates=500), PredictorConfig(num_rounds=30), seed=5)
        return ClimbSearcher(search)

    def drive(s, start, stop, log):
        for n in range(start, stop):
            config = s.suggest(f"t{n}")
            if config is None:  # the iteration is still running: finish the open trials first
                for trial_id in list(s.live):
                    s.on_trial_complete(trial_id, {"score": -abs(0.5 - log[trial_id][0])})
                config = s.suggest(f"t{n}")
            if config is Searcher.FINISHED:
                break
            log[f"t{n}"] = config["weights"]
        return log

    whole = drive(searcher(), 0, 40, {})
    original = searcher()
    log = drive(original, 0, 6, {})
    original.save(str(tmp_path / "state.json"))
    restored = searcher()
    restored.restore(str(tmp_path / "state.json"))
    log = drive(restored, 6, 40, log)
    assert list(log) == list(whole) and all(np.allclose(log[k], whole[k]) for k in whole)
    assert len(whole) == 9 and restored.suggest("t99") is Searcher.FINISHED


def test_searcher_writes_each_iterations_predictor_into_the_run_folder_as_it_is_fitted(tmp_path):
    """What `climb-ray serve` with serve.watch_s picks up while a search goes on."""
    import json

    from ray.tune.search import Searcher

    from climb_ray.adapters.ray_tune import ClimbSearcher
    from climb_ray.config import PredictorConfig, SearchConfig
    from climb_ray.samplers import RegMixSampler

    search = ClimbSearch(RegMixSampler(np.array([0.4, 0.3, 0.2, 0.1])), ["sc00", "sc01", "sc02", "sc03"],
                         SearchConfig(schedule=[6, 3, 2], n_candidates=500), PredictorConfig(num_rounds=30), seed=1)
    s = ClimbSearcher(search, publish_to=str(tmp_path / "run"))
    sidecar = tmp_path / "run" / "search" / "predictor.json"
    fitted_on = []
    for n in range(30):
        config = s.suggest(f"t{n}")
        if config is None:
            for trial_id in list(s.live):
                s.on_trial_complete(trial_id, {"score": float(n)})
            config = s.suggest(f"t{n}")
        if config is Searcher.FINISHED:
            break
        if sidecar.exists():
            quality = json.loads(sidecar.read_text())["quality"]
            fitted_on.append(quality["n_results"])
    # after iteration 0 (6 mixtures), then after iteration 1 (9 results: 8 mixtures, one measured twice)
    assert sorted(set(fitted_on)) == [6, 8]
    assert [t.repeat for t in search.trials[6:9]].count(1) == 1


TRAINER = ROOT / "tests" / "stand_in_trainer.py"


def test_proxy_command_trials_run_the_users_trainer_and_failures_are_retried_then_recorded(ray_session, source_shards,
                                                                                         tmp_path):
    """proxy.command as each Tune trial: the stand-in trainer on the trial's blend; trial 1 exits non-zero and
    trial 2 writes no score (each tried twice, then recorded failed); the trainer's files in each trial folder."""
    from climb_ray.stages.search import make_search

    folder, names, sources, target = source_shards
    command = ("if [ {index} = 1 ]; then echo 'loss is nan' >&2; exit 3; fi; if [ {index} = 2 ]; then exit 0; fi; "
               f"{{python}} {TRAINER} --data-path {{blend}} --target {target} --seed {{seed}} "
               "--score-file {score_file}")
    cfg = config(target, "search.schedule=[5,2]", "search.max_failures=1")
    cfg.proxy.command = command
    storage = tmp_path / "tune"
    search, ids = run_search(cfg, make_search(cfg, json.load(open(folder / "meta.json"))), str(folder), str(storage))
    assert [t.status for t in search.trials] == ["done", "failed", "failed", "done", "done", "done", "done"]
    assert search.finished and failures_by_index(str(storage))[1] == 2 == failures_by_index(str(storage))[2]
    for index, trial in enumerate(search.trials):
        [trial_dir] = glob.glob(os.path.join(storage, "climb", f"*{ids[index]}*"))
        mixture = json.load(open(os.path.join(trial_dir, "mixture.json")))
        assert np.allclose([mixture["weights"][n] for n in names], trial.weights / trial.weights.sum())
        assert mixture["blend"].split()[1::2] == [f"{folder}/{n}/00000-00000" for n, w in zip(names, trial.weights)
                                                  if w > 0]
        if trial.status == "done":
            score = json.load(open(os.path.join(trial_dir, "score.json")))
            assert trial.score == score["score"] == -score["loss"]
            assert "target loss" in open(os.path.join(trial_dir, "trainer.stdout.log")).read()
    errors = {i: open(glob.glob(os.path.join(storage, "climb", f"*{ids[i]}*", "error.txt"))[0]).read() for i in (1, 2)}
    assert "exited with status 3 (last stderr line: 'loss is nan')" in errors[1]
    assert "wrote no score file" in errors[2]


def test_proxy_command_outside_the_search_runs_in_the_folder_it_is_given(ray_session, source_shards, tmp_path):
    """`climb-ray proxy` and compare's evaluation proxies: the trainer's files in the folder they name."""
    from climb_ray.adapters.ray_doremi import evaluate
    from climb_ray.adapters.ray_proxy import run_proxy
    from climb_ray.config_checks import validate

    folder, names, sources, target = source_shards
    cfg = config(target)
    cfg.proxy.command = "echo '{{\"score\": {seed}}}' > {score_file}"
    cfg = validate(cfg)
    one = run_proxy(cfg, str(folder), [1.0] * len(names), 3, str(tmp_path / "proxy"))
    assert one["score"] == 3 and json.load(open(tmp_path / "proxy" / "mixture.json"))["seed"] == 3
    done = {}
    evaluate(cfg, str(folder), [("a", [1.0] * len(names), 1000, str(tmp_path / "eval-a"))], done.__setitem__)
    assert done["a"]["trial_dir"] == str(tmp_path / "eval-a") and (tmp_path / "eval-a" / "score.json").exists()
