"""The search on Ray Tune: ClimbSearcher (a thin Searcher over climb_ray.search.ClimbSearch, like
Ray's own Optuna plugin) and the proxy trainable; each trial trains and scores one proxy.

The experiment lives in <run>/search/tune/climb; a killed driver reruns the same command and the
Tuner is restored from there: finished trials are not run again. A search extended after it finished
(a longer schedule) runs each extension as one more experiment beside it (climb-ext1, ...), whose
searcher starts from the recorded search.
"""

from __future__ import annotations

import dataclasses
import json
import os

from ray import tune
from ray.air.integrations.mlflow import MLflowLoggerCallback
from ray.tune.search import Searcher

import numpy as np

from climb_ray import log, tracking
from climb_ray.artifacts import PREDICTOR, PREDICTOR_SIDECAR
from climb_ray.config import Config
from climb_ray.objective import COLUMN, target_components
from climb_ray.search import ClimbSearch, Trial

LOG = log.get(__name__)

EXPERIMENT = "climb"
_RUNNERS: dict[str, object] = {}  # one trial runner per worker process (trials reuse actors), by its settings


class ClimbSearcher(Searcher):
    """Iteration-aware: suggest() returns None while an iteration still runs, FINISHED at the end."""

    def __init__(self, search: ClimbSearch, metric: str = "score", mode: str = "max", publish_to: str | None = None,
                 trial_ids: dict[int, str] | None = None):
        super().__init__(metric=metric, mode=mode)
        self.search = search
        self.live: dict[str, int] = {}  # Tune trial id -> index in search.trials
        self.trial_ids: dict[int, str] = dict(trial_ids or {})  # of earlier experiments too (an extension)
        self.publish_to = publish_to  # run folder: each new fit is written to its search/predictor.txt
        self.published = 0  # fits written so far

    def suggest(self, trial_id: str):
        if self.search.finished:
            return Searcher.FINISHED
        batch = self.search.ask(1)
        self._publish()
        if not batch:
            return None
        index, weights = batch[0]
        self.live[trial_id], self.trial_ids[index] = index, trial_id
        trial = self.search.trials[index]  # repeat n: the n-th re-measurement of a mixture, with proxy seed + n
        return {"index": index, "iteration": trial.iteration, "repeat": trial.repeat,
                "weights": [float(w) for w in weights],
                "mixture": {n: float(w) for n, w in zip(self.search.names, weights)}}  # for the trackers' params

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        index = self.live.pop(trial_id, None)
        if index is None:  # a trial recorded as failed and resumed after a restore (resume_errored)
            index = next((i for i, t in self.trial_ids.items() if t == trial_id), None)
            if index is None or error or not result or result.get(self.metric) is None:
                return
        score = None if error or not result else result.get(self.metric)
        self.search.tell(index, score, components_of(result))
        self._progress(index, score)

    def _progress(self, index: int, score) -> None:
        """A line per trial with -v; one per finished iteration otherwise (Tune's own tables need -v)."""
        trials, g = self.search.trials, self.search.trials[index].iteration
        done = sum(t.status != "pending" for t in trials)
        LOG.debug(f"search: trial {index} (iteration {g}) " + (f"scored {score:.4f}" if score is not None else "failed")
                  + f"; {done} of {len(trials)} asked so far are done")
        this = [t for t in trials if t.iteration == g]
        if all(t.status != "pending" for t in this) and len(this) == self.search.schedule[g]:
            best = self.search.best_seen()
            failed = sum(t.status == "failed" for t in this)
            LOG.info(f"search: iteration {g} done: {len(this)} proxies" + (f" ({failed} failed)" if failed else "")
                     + (f", best score so far {best.score:.4f}" if best is not None else ""))

    def _publish(self) -> None:
        """Write each new fit (one per iteration) to <run>/search/predictor.txt + .json, so that a
        running `climb-ray serve` with serve.watch_s reloads it while the search goes on."""
        fits = len(self.search.fits)
        if self.publish_to is None or self.search.predictor is None or fits == getattr(self, "published", 0):
            return
        from climb_ray.artifacts import RunDir

        run = RunDir(self.publish_to)
        model, sidecar = self.search.predictor.to_text()
        run.write_text(PREDICTOR_SIDECAR, sidecar)
        run.write_text(PREDICTOR, model)  # last: a watcher reloads when this file changes
        self.published = fits

    def save(self, checkpoint_path: str) -> None:
        state = {"search": self.search.state(), "live": self.live,
                 "trial_ids": {str(k): v for k, v in self.trial_ids.items()}}
        with open(checkpoint_path, "w") as out:
            json.dump(state, out)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as src:
            state = json.load(src)
        self.search.restore(state["search"])
        self.live = {k: int(v) for k, v in state["live"].items()}
        self.trial_ids = {int(k): v for k, v in state["trial_ids"].items()}


def proxy_trial(config: dict, cfg: Config, tokens_url: str, report_every: int = 0) -> dict:
    """One Tune trial: train and score a proxy on config['weights'] (or run proxy.command on it); the final
    result is returned. report_every > 0: the built-in proxy also reports its train loss every that many
    steps (timesteps_total = the step, the trackers' x axis; score None: the searcher reads only the final)."""
    from climb_ray.trial import ProxyRunner, make_runner

    key = json.dumps([tokens_url, dataclasses.asdict(cfg)], sort_keys=True, default=str)
    if key not in _RUNNERS:
        _RUNNERS.clear()
        _RUNNERS[key] = make_runner(cfg, tokens_url)
    runner, seed = _RUNNERS[key], cfg.seed + int(config.get("repeat", 0))
    if isinstance(runner, ProxyRunner):
        def report(step: int, loss: float) -> None:
            tune.report({"score": None, "train_loss": loss, "timesteps_total": step})

        result = runner(weights_of(config), seed=seed, every=report_every, report=report if report_every else None)
    else:
        result = runner(weights_of(config), seed=seed, trial_dir=trial_folder(), index=config.get("index"))
    flat = {"score": result["score"], "seconds": result["train_seconds"] + result["score_seconds"]}
    if report_every and "train_steps" in result:
        flat["timesteps_total"] = result["train_steps"]  # the score lands at the last step of the loss curve
    for name in ("train_loss_last", "train_tokens_per_s"):
        if name in result:
            flat[name] = result[name]
    for target in result["targets"]:
        flat[f"target_{os.path.basename(target['name'])}"] = target["score"]
    for name, target in zip(target_components(cfg.target), result["targets"]):  # none from proxy.command
        flat[f"{COLUMN}{name}"] = target["score"]
    for name, value in result.get("trainer", {}).items():  # the other numbers of proxy.command's score file
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f"trainer_{name}"] = value
    return flat


def components_of(result: dict | None) -> dict:
    """Each target's score in a trial's result (objective.COLUMN keys); {} when it has none."""
    return {k[len(COLUMN):]: v for k, v in (result or {}).items() if k.startswith(COLUMN)}


def trial_folder() -> str:
    """The running trial's folder in the experiment (<run>/search/tune/<experiment>/<trial>) when the run
    folder is local, else the trial's working folder on its node (Tune does not copy it to the store)."""
    import pyarrow.fs

    storage = tune.get_context().get_storage()
    if isinstance(storage.storage_filesystem, pyarrow.fs.LocalFileSystem):
        return storage.trial_fs_path
    return os.getcwd()


def weights_of(config: dict) -> list[float]:
    """The mixture of a trial: ours hands `weights`; Optuna hands x0..xk-1 in [0, 1], normalised here."""
    if "weights" in config:
        return list(config["weights"])
    x = [float(config[f"x{i}"]) + 1e-12 for i in range(len([k for k in config if k.startswith("x")]))]
    return [v / sum(x) for v in x]


def trial_resources(cfg: Config) -> dict:
    """The Tune spelling of one proxy trial's resources (the same as the `climb-ray proxy` task's)."""
    from climb_ray.adapters.ray_proxy import trial_resources as task_resources

    task = task_resources(cfg)
    return {"cpu": task["num_cpus"], **({"gpu": task["num_gpus"]} if "num_gpus" in task else {})}


def run_config(cfg: Config, experiment: str, storage: str, stage: str = "search") -> tune.RunConfig:
    """The Tune run of a search experiment, with the trackers of cfg.tracking as logger callbacks (a restored
    experiment keeps the callbacks it was started with)."""
    return tune.RunConfig(name=experiment, storage_path=storage, verbose=log.tune_verbosity(),
                          failure_config=tune.FailureConfig(max_failures=cfg.search.max_failures),
                          callbacks=tracking_callbacks(cfg, experiment, stage))


class ProxyMLflowCallback(MLflowLoggerCallback):
    """Ray's MLflow callback with each target's score/<name> logged as score_<name>: MLflow's file store keeps a
    metric as a file, where `score` and `score/<name>` cannot both be."""

    def log_trial_result(self, iteration: int, trial, result: dict):
        result = {f"score_{k[len(COLUMN):]}" if k.startswith(COLUMN) else k: v for k, v in result.items()}
        super().log_trial_result(iteration, trial, result)


def tracking_callbacks(cfg: Config, experiment: str, stage: str = "search") -> list:
    """Ray's own logger callbacks for MLflow (a run per trial: the config as params, mixture/<cluster>
    among them, every result as metrics; tagged as tracking.proxy_tags says), Weights & Biases (grouped as
    tracking.wandb_group says) and TensorBoard, as cfg.tracking asks."""
    t, callbacks = cfg.tracking, []
    tracking.check(t)
    if t.mlflow_uri:
        callbacks.append(ProxyMLflowCallback(tracking_uri=tracking.allow_file_store(tracking.mlflow_uri(t)),
                                             experiment_name=tracking.experiment_name(cfg),
                                             tags=tracking.proxy_tags(cfg, stage, experiment)))
    if t.wandb_project:
        from ray.air.integrations.wandb import WandbLoggerCallback

        callbacks.append(WandbLoggerCallback(project=t.wandb_project,
                                             group=tracking.wandb_group(cfg, stage, experiment)))
    if t.tensorboard:
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())
    return callbacks


def run_search(cfg: Config, search: ClimbSearch, tokens_url: str, storage: str, publish_to: str | None = None,
               experiment: str = EXPERIMENT, trial_ids: dict[int, str] | None = None,
               stage: str = "search") -> tuple[ClimbSearch, dict]:
    """Run (or resume) the Tune experiment <storage>/<experiment>; returns the search with every result
    told, and the Tune trial id of each search trial (by index). With publish_to (a run folder), each
    iteration's predictor is written there as soon as it is fitted. An extension passes the restored
    search with its longer schedule, a new experiment name and the earlier trials' ids. `stage`: the
    search's folder in the run (search, compare/<method>...), as the trackers tag its proxies."""
    # Optuna's searcher records every intermediate result's score: it gets the final one only
    every = cfg.tracking.log_every_steps if tracking.enabled(cfg.tracking) and search.method != "optuna" else 0
    trainable = tune.with_resources(tune.with_parameters(proxy_trial, cfg=cfg, tokens_url=tokens_url,
                                                         report_every=every), trial_resources(cfg))
    path = os.path.join(storage, experiment)
    if search.method == "optuna":
        return _run_optuna(cfg, search, trainable, storage, stage)
    tuner = build_tuner(cfg, trainable, storage, experiment, stage,
                        lambda: ClimbSearcher(search, publish_to=publish_to, trial_ids=trial_ids))
    tuner.fit()
    return _final_state(path, search)


def build_tuner(cfg: Config, trainable, storage: str, experiment: str, stage: str, searcher, num_samples: int = -1,
                param_space: dict | None = None) -> tune.Tuner:
    """The Tuner of a search experiment: restored (unfinished and errored trials resumed) when
    <storage>/<experiment> holds one, else a new one asking `searcher()` (built only then) for its trials."""
    path = os.path.join(storage, experiment)
    if tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(search_alg=searcher(), num_samples=num_samples, metric="score", mode="max",
                                    max_concurrent_trials=cfg.search.max_concurrent_trials or None,
                                    reuse_actors=True),
        run_config=run_config(cfg, experiment, storage, stage))


def proxy_seconds(storage: str) -> float:
    """Seconds the search's proxies spent training and scoring, summed over the trials' results of every
    experiment in `storage` (the search's and its extensions')."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(storage)
    total = 0.0
    for path in fs.glob(f"{root}/{EXPERIMENT}*/*/result.json"):
        with fs.open(path, "r") as src:
            for line in src:
                if line.strip():
                    total += float(json.loads(line).get("seconds", 0.0))
    return total


def _final_state(path: str, search: ClimbSearch) -> tuple[ClimbSearch, dict]:
    """The searcher's last checkpoint (Tune writes it when the experiment ends), restored into `search`."""
    state = searcher_state(path)
    search.restore(state["search"])
    return search, {int(k): v for k, v in state["trial_ids"].items()}


def searcher_state(path: str) -> dict:
    """The last searcher checkpoint of the experiment at `path` (local or an object-store URI), as
    ClimbSearcher.save wrote it: {"search": ClimbSearch.state(), "trial_ids": ..., "live": ...}."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(path)
    files = sorted(fs.glob(f"{root}/searcher-state-*"))  # names carry the session's start time
    if not files:
        raise RuntimeError(f"the Tune experiment in {path} left no searcher state")
    with fs.open(files[-1], "r") as src:
        return json.load(src)



def _run_optuna(cfg: Config, search: ClimbSearch, trainable, storage: str, stage: str):
    """Optuna's TPE through Ray Tune's OptunaSearch over x_i in [0, 1] (weights = x / sum x), for the
    whole budget; recorded as one iteration, answered with the best seen."""
    from ray.tune.search.optuna import OptunaSearch

    budget = sum(cfg.search.schedule)
    space = {f"x{i}": tune.uniform(0.0, 1.0) for i in range(len(search.names))}
    grid = build_tuner(cfg, trainable, storage, EXPERIMENT, stage, lambda: OptunaSearch(seed=cfg.seed),
                       num_samples=budget, param_space=space).fit()
    results = sorted((r for r in grid), key=lambda r: r.path)
    search.iteration, search.trials, ids = 0, [], {}  # one iteration, its trials chosen by Optuna
    for index, result in enumerate(results):
        search.trials.append(Trial(np.array(weights_of(result.config)), 0, asked=True))
        score = None if result.error or not result.metrics else result.metrics.get("score")
        search.tell(index, score, components_of(result.metrics))
        ids[index] = result.metrics.get("trial_id", "") if result.metrics else ""
    return search, ids
