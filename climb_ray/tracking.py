"""Experiment tracking settings (tracking.*) checked, and the search's own MLflow run: the predictor's
held-out quality per iteration, written with MLflow's client.

The proxies' runs (mixture, loss curve, score) come from Ray Tune's logger callbacks, built in
climb_ray.adapters.ray_tune; this module holds no Ray.
"""

from __future__ import annotations

import math
import os
import time

from climb_ray import log
from climb_ray.config import Config, ConfigError, TrackingConfig

LOG = log.get(__name__)
BARE_STORES = ("databricks", "databricks-uc", "uc")  # the URIs without a scheme that MLflow reads as a store


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
    """tracking.mlflow_uri: a URI (scheme://..., file:...) or one of MLflow's bare store names (databricks,
    databricks-uc, uc) as it is; anything else is a folder, made an absolute file: URI (./databricks for a
    folder of that name)."""
    uri = t.mlflow_uri
    if "://" in uri or uri.startswith("file:") or uri in BARE_STORES:
        return uri
    return "file://" + os.path.abspath(uri)


def allow_file_store(uri: str) -> str:
    """`uri`, with MLFLOW_ALLOW_FILE_STORE set when it is a file store: kept in maintenance by MLflow 3, which
    refuses it unless that is set, but what the user asked for. Called where a client or callback is made."""
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def run_name(cfg: Config) -> str:
    """The run folder's name (the last part of run_dir)."""
    return os.path.basename(cfg.run_dir.rstrip("/")) or "climb"


def experiment_name(cfg: Config) -> str:
    """tracking.mlflow_experiment, or the run folder's name."""
    return cfg.tracking.mlflow_experiment or run_name(cfg)


def proxy_tags(cfg: Config, stage: str, experiment: str) -> dict:
    """The MLflow tags of a search's proxy runs: the run folder, the search's folder in it (`stage`: search,
    compare/<method>...; the search's own run carries it too) and the Tune experiment (climb, climb-ext1...)."""
    return {"climb.run_dir": cfg.run_dir, "climb.stage": stage, "climb.experiment": experiment}


def wandb_group(cfg: Config, stage: str, experiment: str) -> str:
    """The W&B group of a search's proxy runs: the run folder's name, the search's folder and the Tune experiment."""
    return f"{run_name(cfg)}/{stage}/{experiment}"


def log_search(cfg: Config, search, info: dict, *, name: str = "search") -> str | None:
    """One MLflow run `name` beside the proxies' runs (tagged climb.run_dir), step = the iteration:
    predictor_spearman, predictor_mae, predictor_n_results of the fit on the results through it; best_score
    (best measured score so far), mean_score and failed of its trials; the answer (`info`, as the search
    stage's write_outputs gives it) as params answer/<cluster> and metrics answer_*. Returns its run id
    (None with tracking.mlflow_uri unset). Best effort: a store that fails (a server down, a bad URI) is a
    warning, not a failed stage (the search's outputs are written; a rerun would repeat every proxy)."""
    if not cfg.tracking.mlflow_uri:
        return None
    try:
        return _log_search(cfg, search, info, name)
    except Exception as err:  # whatever the store or its client raises
        first = (str(err).strip().splitlines() or [""])[0]
        LOG.warning(f"tracking: the {name!r} MLflow run was not written to {cfg.tracking.mlflow_uri}: "
                    f"{type(err).__name__}: {first}")
        return None


def _log_search(cfg: Config, search, info: dict, name: str) -> str:
    check(cfg.tracking)
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(allow_file_store(mlflow_uri(cfg.tracking)))
    experiment = client.get_experiment_by_name(experiment_name(cfg))
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(experiment_name(cfg))
    run = client.create_run(experiment_id, run_name=name,
                            tags={"climb.run_dir": cfg.run_dir, "climb.stage": name, "climb.kind": name})
    now, metrics = int(time.time() * 1000), []

    def add(key: str, value, step: int) -> None:
        if value is not None and math.isfinite(float(value)):
            metrics.append(Metric(key, float(value), now, step))

    for fit in {f["through"]: f for f in search.fits}.values():  # the last fit on each iteration's results
        for key in ("spearman", "mae", "n_results"):
            add(f"predictor_{key}", fit.get(key), fit["through"])
    best = -math.inf
    for g in range(search.iteration + 1):
        scores = [t.score for t in search.trials if t.iteration == g and t.status == "done"]
        best = max([best, *scores])
        add("best_score", best if best > -math.inf else None, g)
        add("mean_score", sum(scores) / len(scores) if scores else None, g)
        add("failed", sum(t.iteration == g and t.status == "failed" for t in search.trials), g)
    for key in ("predicted", "estimate", "best_seen"):
        add(f"answer_{key}", info.get(key), search.iteration)
    params = [Param("method", search.method), Param("schedule", str(list(search.schedule))),
              *(Param(f"answer/{n}", f"{w:.6g}") for n, w in info["weights"].items())]
    client.log_batch(run.info.run_id, metrics=metrics, params=params)  # the client splits it to the store's limits
    client.set_terminated(run.info.run_id)
    return run.info.run_id
