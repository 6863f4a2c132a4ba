"""One proxy trial as a Ray task: on a GPU when the cluster has GPUs, else on CPU workers (the built-in
proxy, or proxy.command in the folder given, else a temporary one)."""

from __future__ import annotations

import ray

from climb_ray.config import Config


def trial_resources(cfg: Config) -> dict:
    """Resources of one proxy trial: proxy.gpus_per_trial GPUs when the cluster has GPUs or its
    autoscaler can add some (resources.device)."""
    from climb_ray.adapters.ray_runtime import use_gpus

    gpu, _ = use_gpus(cfg.resources.device)
    options = {"num_cpus": cfg.proxy.cpus_per_trial}
    if gpu and cfg.proxy.gpus_per_trial > 0:
        options["num_gpus"] = cfg.proxy.gpus_per_trial
    return options


def _train_and_score(cfg: Config, tokens_url: str, weights: list[float], seed: int,
                     trial_dir: str | None = None) -> dict:
    """trial_dir: proxy.command's folder (None: a temporary one, removed once the score is read)."""
    from climb_ray.trial import make_runner

    runner = make_runner(cfg, tokens_url)
    return runner(weights, seed=seed, trial_dir=trial_dir) if cfg.proxy.command else runner(weights, seed=seed)


def run_proxy(cfg: Config, tokens_url: str, weights: list[float], seed: int, trial_dir: str | None = None) -> dict:
    task = ray.remote(max_retries=0, **trial_resources(cfg))(_train_and_score)
    return ray.get(task.remote(cfg, tokens_url, list(weights), seed, trial_dir))
