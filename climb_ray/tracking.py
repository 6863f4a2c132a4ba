"""Experiment tracking settings (tracking.*) checked, and the search's own MLflow run: the predictor's
held-out quality per iteration, written with MLflow's client.

The proxies' runs (mixture, loss curve, score) come from Ray Tune's logger callbacks, built in
climb_ray.adapters.ray_tune; this module holds no Ray.
"""

from __future__ import annotations

import math
import os
import time

from climb_ray.config import Config, ConfigError, TrackingConfig


def enabled(t: TrackingConfig) -> bool:
    return bool(t.mlflow_uri or t.wandb_project or t.tensorboard)


def check(t: TrackingConfig) -> None:
    """A tracker that is set but not installed stops the command here, in one line."""
    needs = [("tracking.mlflow_uri", t.mlflow_uri, "mlflow", "'climb-ray[tracking]' (mlflow-skinny)"),
             ("tracking.wandb_project", t.wandb_project, "wandb", "wandb"),
             ("tracking.tensorboard", t.tensorboard, "tensorboardX", "tensorboardX")]
    for field, value, module, install in needs:
        if not value:
            continue
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(f"{field}={value!r}: needs {module}, which is not installed: pip install {install}") \
                from None


def mlflow_uri(t: TrackingConfig) -> str:
    """tracking.mlflow_uri, a plain folder made an absolute file: URI. A file store (kept in maintenance
    by MLflow 3, which refuses it unless MLFLOW_ALLOW_FILE_STORE is set) is what the user asked for: allowed."""
    uri = t.mlflow_uri
    if "://" not in uri and not uri.startswith("file:"):
        uri = "file://" + os.path.abspath(uri)
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def experiment_name(cfg: Config) -> str:
    """tracking.mlflow_experiment, or the run folder's name."""
    return cfg.tracking.mlflow_experiment or os.path.basename(cfg.run_dir.rstrip("/")) or "climb"


def log_search(cfg: Config, search, info: dict, *, name: str = "search") -> str | None:
    """One MLflow run `name` beside the proxies' runs (tagged climb.run_dir), step = the iteration:
    predictor_spearman, predictor_mae, predictor_n_results of the fit on the results through it; best_score
    (best measured score so far), mean_score and failed of its trials; the answer (`info`, as the search
    stage's write_outputs gives it) as params answer/<cluster> and metrics answer_*. Returns its run id
    (None with tracking.mlflow_uri unset)."""
    if not cfg.tracking.mlflow_uri:
        return None
    check(cfg.tracking)
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri(cfg.tracking))
    experiment = client.get_experiment_by_name(experiment_name(cfg))
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name(cfg))
    run = client.create_run(experiment_id, run_name=name, tags={"climb.run_dir": cfg.run_dir, "climb.kind": name})
    now, metrics = int(time.time() * 1000), []

    def add(key: str, value, step: int) -> None:
        if value is not None and math.isfinite(float(value)):
            metrics.append(Metric(key, float(value), now, step))

    for fit in {f["through"]: f for f in search.fits}.values():  # the last fit on each iteration's results
        for key in ("spearman", "mae", "n_results"):
            add(f"predictor_{key}", fit.get(key), fit["through"])
    best = -math.inf
    for g in range(search.generation + 1):
        scores = [t.score for t in search.trials if t.generation == g and t.status == "done"]
        best = max([best, *scores])
        add("best_score", best if best > -math.inf else None, g)
        add("mean_score", sum(scores) / len(scores) if scores else None, g)
        add("failed", sum(t.generation == g and t.status == "failed" for t in search.trials), g)
    for key in ("predicted", "estimate", "best_seen"):
        add(f"answer_{key}", info.get(key), search.generation)
    params = [Param("strategy", search.strategy), Param("schedule", str(list(search.schedule))),
              *(Param(f"answer/{n}", f"{w:.6g}") for n, w in info["weights"].items())]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)
    client.set_terminated(run.info.run_id)
    return run.info.run_id
