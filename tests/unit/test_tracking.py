"""Tracking settings: a tracker set but not installed is named before anything runs, and no stage depends
on them (turning tracking on never asks for a rebuild); the search's MLflow run, written to a local file
store, and a store that fails only warns."""

import dataclasses
import os
import sys

import numpy as np
import pytest

from climb_ray.config import Config, ConfigError, SearchConfig, TrackingConfig
from climb_ray.config_io import load_config
from climb_ray.samplers import RegMixSampler
from climb_ray.search import ClimbSearch
from climb_ray.stages.pipeline import DEPENDS, stage_depends
from climb_ray.tracking import (allow_file_store, check, experiment_name, log_search, mlflow_uri, proxy_tags,
                                wandb_group)
from tests.conftest import ROOT


@pytest.mark.parametrize("field, value, module", [("mlflow_uri", "file:///tmp/mlruns", "mlflow"),
                                                  ("wandb_project", "climb", "wandb"),
                                                  ("tensorboard", True, "tensorboardX")])
def test_a_tracker_set_but_not_installed_is_named_in_one_line(monkeypatch, field, value, module):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it raises ImportError
    with pytest.raises(ConfigError) as err:
        check(TrackingConfig(**{field: value}))
    assert str(err.value).startswith(f"tracking.{field}={value!r}: needs {module}, which is not installed: pip ")
    assert "\n" not in str(err.value)
    check(TrackingConfig())  # nothing set: nothing needed


def test_tracking_settings_are_no_stage_dependency():
    cfg = Config()
    before = {stage: stage_depends(cfg, stage) for stage in DEPENDS}
    cfg.tracking = TrackingConfig(mlflow_uri="file:///tmp/mlruns", mlflow_experiment="x", wandb_project="p",
                                  tensorboard=True, log_every_steps=3)
    assert {stage: stage_depends(cfg, stage) for stage in DEPENDS} == before


def test_a_bad_report_interval_is_a_config_error():
    with pytest.raises(ConfigError, match=r"tracking.log_every_steps=-1: must be at least 0"):
        load_config(ROOT / "climb_ray" / "configs" / "demo.yaml", ["tracking.log_every_steps=-1"])


def test_a_plain_folder_is_an_absolute_file_store_and_the_experiment_defaults_to_the_run_folders_name(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    assert mlflow_uri(TrackingConfig(mlflow_uri="mlruns")) == f"file://{tmp_path}/mlruns"
    assert mlflow_uri(TrackingConfig(mlflow_uri="./databricks")) == f"file://{tmp_path}/databricks"
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # reading the setting changes nothing
    for uri in ("http://127.0.0.1:5000", "sqlite:///mlflow.db", "databricks", "databricks-uc", "uc",
                "databricks://profile"):
        assert mlflow_uri(TrackingConfig(mlflow_uri=uri)) == uri  # MLflow's bare store names are no folders
    assert allow_file_store("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    assert allow_file_store(f"file://{tmp_path}/mlruns") == f"file://{tmp_path}/mlruns"
    assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
    cfg = dataclasses.replace(Config(), run_dir="s3://bucket/runs/climb-1/")
    assert experiment_name(cfg) == "climb-1"
    cfg.tracking.mlflow_experiment = "mine"
    assert experiment_name(cfg) == "mine"


def test_the_cli_names_a_missing_tracker_before_any_stage_runs(tmp_path, monkeypatch, capsys):
    from climb_ray import commands
    from climb_ray.cli import main

    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setattr(commands, "run_pipeline", lambda *a, **kw: pytest.fail("a stage ran"))
    target = tmp_path / "target.jsonl"
    target.write_text('{"text": "held-out text"}\n')
    code = main(["search", "--config", "demo", f"run_dir={tmp_path / 'run'}", f"target.paths=[{target}]",
                 "tracking.wandb_project=climb"])
    assert code == 2
    assert capsys.readouterr().err.strip() == ("climb-ray: error: tracking.wandb_project='climb': needs wandb, which "
                                               "is not installed: pip install wandb")


def test_the_cli_names_a_missing_tracker_before_compare_runs_a_stage_but_not_for_doremi_alone(tmp_path,
                                                                                                monkeypatch, capsys):
    from climb_ray.cli import main
    from climb_ray.stages import compare

    class Reached(Exception):
        pass

    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setattr(compare, "run_pipeline", lambda *a, **kw: (_ for _ in ()).throw(Reached()))
    target = tmp_path / "target.jsonl"
    target.write_text('{"text": "held-out text"}\n')
    args = ["compare", "--config", "demo", f"run_dir={tmp_path / 'run'}", f"target.paths=[{target}]",
            "tracking.wandb_project=climb"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == ("climb-ray: error: tracking.wandb_project='climb': needs wandb, which "
                                               "is not installed: pip install wandb")
    with pytest.raises(Reached):  # DoReMi runs no search: no tracker is needed
        main([*args, "compare.methods=[doremi]"])


def test_export_of_given_weights_runs_no_search_and_needs_no_tracker(tmp_path, monkeypatch, capsys):
    from climb_ray import commands
    from climb_ray.cli import main

    class Reached(Exception):
        pass

    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setattr(commands, "run_pipeline", lambda *a, **kw: (_ for _ in ()).throw(Reached(kw["skip"])))
    common = ["--config", "demo", f"run_dir={tmp_path / 'run'}", "tracking.wandb_project=climb"]
    with pytest.raises(Reached) as reached:
        main(["export", "--weights", "uniform", *common, "target.paths=[]"])
    assert reached.value.args == (("search",),)
    target = tmp_path / "target.jsonl"
    target.write_text('{"text": "held-out text"}\n')
    assert main(["export", *common, f"target.paths=[{target}]"]) == 2  # the search's answer: a search runs
    assert "needs wandb, which is not installed" in capsys.readouterr().err


def test_proxy_runs_are_tagged_and_grouped_by_the_search_they_belong_to():
    cfg = dataclasses.replace(Config(), run_dir="/runs/climb-1")
    cfg.tracking.mlflow_experiment = "shared"
    assert proxy_tags(cfg, "compare/random", "climb") == {"climb.run_dir": "/runs/climb-1",
                                                          "climb.stage": "compare/random", "climb.experiment": "climb"}
    assert wandb_group(cfg, "search", "climb-ext1") == "climb-1/search/climb-ext1"  # the run folder's name
    assert wandb_group(cfg, "compare/random", "climb") != wandb_group(cfg, "search", "climb")


def finished_search(clusters: int, seed: int = 0) -> ClimbSearch:
    """A finished random search over `clusters` equal clusters, scored by a fixed linear objective."""
    names = [f"sc{i:03d}" for i in range(clusters)]
    search = ClimbSearch(RegMixSampler(np.full(clusters, 1 / clusters), max_epochs=100), names,
                         SearchConfig(schedule=[6], n_candidates=200, max_epochs=100), Config().predictor,
                         seed=seed, method="random")
    gain = np.linspace(0, 1, clusters)
    while not search.finished:
        for index, w in search.ask(100):
            search.tell(index, float(w @ gain))
    return search


def answer_info(search: ClimbSearch) -> dict:
    best = search.best_seen()
    return {"weights": dict(zip(search.names, best.weights.tolist())), "predicted": None, "estimate": None,
            "best_seen": best.score}


def test_the_search_run_of_150_clusters_holds_every_answer_param(tmp_path):
    from mlflow.tracking import MlflowClient

    search = finished_search(150)
    info = answer_info(search)
    cfg = dataclasses.replace(Config(), run_dir=str(tmp_path / "run"))
    cfg.tracking.mlflow_uri = str(tmp_path / "mlruns")
    run_id = log_search(cfg, search, info, name="compare/random")
    run = MlflowClient(f"file://{tmp_path}/mlruns").get_run(run_id)
    assert len(run.data.params) == 152  # method, schedule and 150 answer/<cluster>: more than one batch of 100
    assert {n: float(run.data.params[f"answer/{n}"]) for n in search.names} == pytest.approx(info["weights"],
                                                                                             rel=1e-5, abs=1e-9)
    assert run.data.tags["climb.stage"] == "compare/random" and run.info.status == "FINISHED"
    assert run.data.metrics["best_score"] == pytest.approx(max(t.score for t in search.trials))


@pytest.mark.parametrize("uri", ["http://127.0.0.1:1", "nosuch://store"])
def test_a_tracking_store_that_fails_is_a_one_line_warning_not_a_failed_search(tmp_path, monkeypatch, capsys, uri):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a server down: refused at once, not retried
    search = finished_search(4)
    cfg = dataclasses.replace(Config(), run_dir=str(tmp_path / "run"))
    cfg.tracking.mlflow_uri = uri
    assert log_search(cfg, search, answer_info(search)) is None
    err = capsys.readouterr().err
    assert err.startswith(f"climb-ray: warning: tracking: the 'search' MLflow run was not written to {uri}: ")
    assert err.count("\n") == 1
