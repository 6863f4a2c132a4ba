"""Experiment tracking on a real search (Ray Tune, 6 + 2 proxies): the local MLflow store read back with
MLflow's own client (a run per proxy with its mixture, loss curve and score; the search's run with the
predictor's quality per iteration), and the TensorBoard event files of the trial folders."""

import glob
import struct

import pandas as pd
import pytest

from climb_ray.config_io import load_config
from climb_ray.stages.pipeline import run_pipeline
from tests.conftest import ROOT, ready_for_search

pytestmark = [pytest.mark.ray, pytest.mark.slow]
STEPS, EVERY = 8, 2
FAST = [f"proxy.steps={STEPS}", "proxy.batch_size=8", "proxy.context=64", "target.max_docs=20", "proxy.threads=1",
        "search.n_candidates=2000", "predictor.num_rounds=50", "search.max_concurrent_trials=2",
        "search.schedule=[6,2]", "predictor.ensemble=2", f"tracking.log_every_steps={EVERY}",
        "tracking.tensorboard=true"]  # 2 folds of 6 results: each fit has held-out quality figures


@pytest.fixture(scope="module")
def tracked(ray_session, source_shards, tmp_path_factory):
    """A search tracked into a local MLflow file store: (run folder, store URI, cluster names)."""
    folder, names, _, target = source_shards
    root = tmp_path_factory.mktemp("tracking")
    run, store = root / "run", f"file://{root}/mlruns"
    cfg = load_config(ROOT / "climb_ray" / "configs" / "demo.yaml",
                      [f"run_dir={run}", f"target.paths=[{target}]", *FAST, f"tracking.mlflow_uri={store}"])
    ready_for_search(folder, names, cfg)
    run_pipeline(cfg, until="search")
    return run, store, names


def mlflow_runs(store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("run")  # the run folder's name
    return client, client.search_runs([experiment.experiment_id])


def test_each_proxy_is_an_mlflow_run_with_its_mixture_loss_curve_and_score(tracked):
    run, store, names = tracked
    client, runs = mlflow_runs(store)
    proxies = [r for r in runs if r.data.tags.get("climb.experiment") == "climb"]
    table = pd.read_parquet(run / "search" / "trials.parquet")
    assert len(proxies) == len(table) == 8 and {r.info.status for r in proxies} == {"FINISHED"}
    assert {r.data.tags["climb.stage"] for r in proxies} == {"search"}  # compare/<method> for compare's searches
    scores = {}
    for r in proxies:
        mixture = {n: float(r.data.params[f"mixture/{n}"]) for n in names}
        row = table[table["index"] == int(r.data.params["index"])].iloc[0]
        assert mixture == pytest.approx({n: row[f"w_{n}"] for n in names}, abs=1e-9)
        curve = client.get_metric_history(r.info.run_id, "train_loss")
        assert [m.step for m in curve] == list(range(EVERY, STEPS + 1, EVERY))
        assert all(m.value > 0 for m in curve) and curve[-1].value < curve[0].value
        score = client.get_metric_history(r.info.run_id, "score")
        assert [m.step for m in score] == [STEPS]  # the final result only: the intermediate ones carry no score
        scores[int(r.data.params["index"])] = score[0].value
        assert [k for k in r.data.metrics if k.startswith("score_")]  # each target's score beside `score`
    assert scores == pytest.approx(dict(zip(table["index"], table["score"])))


def test_the_search_run_has_the_predictors_held_out_quality_per_iteration(tracked):
    run, store, names = tracked
    client, runs = mlflow_runs(store)
    (search,) = [r for r in runs if r.info.run_name == "search"]
    assert search.data.tags["climb.stage"] == "search"
    for key in ("predictor_spearman", "predictor_mae", "predictor_n_results"):
        assert [m.step for m in client.get_metric_history(search.info.run_id, key)] == [0, 1], key
    table = pd.read_parquet(run / "search" / "trials.parquet")
    distinct = len(table[[f"w_{n}" for n in names]].round(9).drop_duplicates())  # a re-measured mixture counts once
    assert [m.value for m in client.get_metric_history(search.info.run_id, "predictor_n_results")] == [6, distinct]
    best = [m.value for m in client.get_metric_history(search.info.run_id, "best_score")]
    assert best == pytest.approx([table["score"][table["iteration"] == 0].max(), table["score"].max()])
    assert set(search.data.params) >= {"method", "schedule", *(f"answer/{n}" for n in names)}


def tensorboard_scalars(path):
    """(tag, step, value) of every scalar in a TensorBoard event file (TFRecord framing, Event protos)."""
    from tensorboardX.proto import event_pb2

    out, data = [], open(path, "rb").read()
    while data:
        (length,) = struct.unpack("<Q", data[:8])
        event = event_pb2.Event.FromString(data[12:12 + length])
        out += [(v.tag, event.step, v.simple_value) for v in event.summary.value if v.HasField("simple_value")]
        data = data[12 + length + 4:]
    return out


def test_tensorboard_event_files_in_the_trial_folders_hold_the_loss_curve(tracked):
    run, _, _ = tracked
    files = glob.glob(str(run / "search" / "tune" / "climb" / "*" / "events.out.tfevents.*"))
    assert len(files) == 8
    scalars = tensorboard_scalars(files[0])
    assert [step for tag, step, _ in scalars if tag == "ray/tune/train_loss"] == list(range(EVERY, STEPS + 1, EVERY))
    assert [step for tag, step, _ in scalars if tag == "ray/tune/score"] == [STEPS]
