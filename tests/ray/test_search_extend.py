"""A finished search re-answered (new answer settings, no proxy trained) and extended (more proxies,
only the new ones trained), through the pipeline on a real Ray Tune. Shards: the demo sources as clusters."""

import glob
import json
import shutil
import time

import pandas as pd
import pytest

from climb_ray.artifacts import RunDir
from climb_ray.config_io import load_config
from climb_ray.stages.pipeline import run_pipeline
from tests.conftest import ROOT, ready_for_search

pytestmark = [pytest.mark.ray, pytest.mark.slow]
FAST = ["proxy.steps=4", "proxy.batch_size=8", "proxy.context=64", "target.max_docs=20", "proxy.threads=1",
        "search.n_candidates=2000", "predictor.num_rounds=50", "search.max_concurrent_trials=2",
        "search.schedule=[2,2]", "search.answer=best_seen"]


def config(run, target, *extra):
    return load_config(ROOT / "climb_ray" / "configs" / "demo.yaml",
                       [f"run_dir={run}", f"target.paths=[{target}]", *FAST, *extra])


def trial_folders(run) -> list[str]:
    """Tune trial folders of every experiment of the run's search (one per proxy trained)."""
    return sorted(glob.glob(f"{run}/search/tune/climb*/*/result.json"))


def trials(run) -> pd.DataFrame:
    return pd.read_parquet(f"{run}/search/trials.parquet")


@pytest.fixture(scope="module")
def searched(ray_session, source_shards, tmp_path_factory):
    """A run folder whose stages up to tokens are the shards (their markers written here) and whose
    search of 2 + 2 proxies is done: (run folder, target)."""
    folder, names, _, target = source_shards
    run = tmp_path_factory.mktemp("extend") / "run"
    cfg = config(run, target)
    ready_for_search(folder, names, cfg)
    run_pipeline(cfg, until="search")
    assert len(trial_folders(run)) == 4
    return run, target


@pytest.fixture(scope="module")
def extended(searched, tmp_path_factory):
    """A copy of `searched` extended by `climb-ray search --extend 2`: (run, target, trials before)."""
    source, target = searched
    run = tmp_path_factory.mktemp("extended") / "run"
    shutil.copytree(source, run)
    before = trials(run)
    result = run_pipeline(config(run, target), until="search", extend=2).results[-1]
    assert not result.skipped and result.info["continued_from"] == 4
    return run, target, before


def test_changing_only_the_answer_settings_reanswers_from_the_recorded_trials_in_seconds_without_training(
        searched, tmp_path):
    from climb_ray.stages.pipeline import describe

    run = tmp_path / "run"
    shutil.copytree(searched[0], run)
    before, folders = trials(run), trial_folders(run)
    assert json.loads((run / "search" / "best_mixture.json").read_text())["answer"] == "best_seen"
    start = time.perf_counter()
    report = run_pipeline(config(run, searched[1], "search.answer=confirmed", "predictor.num_rounds=40"),
                          until="search")
    seconds = time.perf_counter() - start
    result = report.results[-1]
    assert not result.skipped and report.ray == ""  # no stage work: Ray was not even asked for
    assert seconds < 20, seconds
    assert trial_folders(run) == folders
    pd.testing.assert_frame_equal(trials(run), before)
    best = json.loads((run / "search" / "best_mixture.json").read_text())
    assert best["answer"] == "confirmed" and best["trials"] == 4
    marker = json.loads((run / "search" / "_DONE").read_text())
    assert marker["depends"]["search.answer"] == "confirmed" and marker["depends"]["predictor"]["num_rounds"] == 40
    assert "re-answered from the recorded trials" in describe("search", result.info)
    again = run_pipeline(config(run, searched[1], "search.answer=confirmed", "predictor.num_rounds=40"),
                         until="search").results[-1]
    assert again.skipped


def test_extend_trains_exactly_n_new_proxies_and_keeps_the_earlier_trials(extended):
    run, _, before = extended
    after = trials(run)
    assert len(after) == 6 and list(after["iteration"]) == [0, 0, 1, 1, 2, 2]
    pd.testing.assert_frame_equal(after.iloc[:4], before)  # scores, weights and trial ids unchanged
    assert len(trial_folders(run)) == 6 and len(glob.glob(f"{run}/search/tune/climb-ext1/*/result.json")) == 2
    assert json.loads((run / "search" / "schedule.json").read_text())["schedule"] == [2, 2, 2]


def test_after_an_extension_a_plain_rerun_and_the_longer_schedule_train_nothing(extended, tmp_path):
    source, target, _ = extended
    run = tmp_path / "run"
    shutil.copytree(source, run)
    folders = trial_folders(run)
    for extra in ([], ["search.schedule=[2,2,2]"]):
        result = run_pipeline(config(run, target, *extra), until="search").results[-1]
        assert result.skipped and trial_folders(run) == folders and len(trials(run)) == 6


def test_a_killed_extension_resumes_with_the_same_command_without_training_its_finished_proxies(extended, tmp_path):
    """Killed after the extension's proxies finished, before the stage recorded them: the same
    `--extend 2` command resumes that extension (Tune restores it) instead of adding another."""
    source, target, before = extended
    run = tmp_path / "run"
    shutil.copytree(source, run)
    rundir = RunDir(str(run))
    marker = rundir.read_json("search/_DONE")
    (run / "search" / "_DONE").unlink()
    rundir.write_json("search/_STARTED", {"depends": marker["depends"]})
    state = rundir.read_json("search/state.json")
    state["experiment"], state["iterations"] = "climb", [2, 2]
    state["search"]["trials"] = state["search"]["trials"][:4]
    rundir.write_json("search/state.json", state)
    folders = trial_folders(run)
    result = run_pipeline(config(run, target), until="search", extend=2).results[-1]
    assert not result.skipped and trial_folders(run) == folders
    after = trials(run)
    assert len(after) == 6
    pd.testing.assert_frame_equal(after, pd.read_parquet(f"{source}/search/trials.parquet"))
    assert json.loads((run / "search" / "schedule.json").read_text())["schedule"] == [2, 2, 2]


def test_two_targets_are_recorded_through_tune_and_new_target_weights_reanswer_without_training(
        ray_session, source_shards, tmp_path):
    """Each trial's two target scores reach trials.parquet through Tune; then only target.weights changes."""
    folder, names, _, target = source_shards
    second = tmp_path / "second.jsonl"
    second.write_text("".join(open(target).readlines()[-20:]))
    run = tmp_path / "run"
    cfg = config(run, f"{target},{second}")
    ready_for_search(folder, names, cfg)
    run_pipeline(cfg, until="search")
    before, folders = trials(run), trial_folders(run)
    assert len(before) == 4 and before["score"].tolist() == pytest.approx(
        ((before["score/target"] + before["score/second"]) / 2).tolist())
    assert (run / "search" / "pareto.png").exists()
    cfg.target.weights = [0.0, 1.0]
    start = time.perf_counter()
    report = run_pipeline(cfg, until="search")
    assert report.results[-1].info["reanswered"]["changed"] == ["target.weights"]
    assert trial_folders(run) == folders and time.perf_counter() - start < 60  # no proxy trained
    after = trials(run)
    assert after["score"].tolist() == after["score/second"].tolist() == before["score/second"].tolist()
