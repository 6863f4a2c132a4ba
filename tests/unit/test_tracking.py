"""Tracking settings: a tracker set but not installed is named before anything runs, and no stage depends
on them (turning tracking on never asks for a rebuild)."""

import dataclasses
import sys

import pytest

from climb_ray.config import Config, ConfigError, TrackingConfig
from climb_ray.config_io import load_config
from climb_ray.stages.pipeline import DEPENDS, stage_depends
from climb_ray.tracking import check, experiment_name, mlflow_uri
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
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert mlflow_uri(TrackingConfig(mlflow_uri="mlruns")) == f"file://{tmp_path}/mlruns"
    assert mlflow_uri(TrackingConfig(mlflow_uri="http://127.0.0.1:5000")) == "http://127.0.0.1:5000"
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
