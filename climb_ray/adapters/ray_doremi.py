"""DoReMi and the evaluation proxies of `climb-ray compare` as Ray tasks: each on a GPU when the cluster
has GPUs (resources.device), else on proxy.cpus_per_trial CPUs. The maths is climb_ray.baselines.doremi
and climb_ray.trial."""

from __future__ import annotations

import ray

from climb_ray import log
from climb_ray.adapters.ray_proxy import _train_and_score, trial_resources
from climb_ray.config import Config

LOG = log.get(__name__)


def _doremi(cfg: Config, tokens_url: str) -> dict:
    import torch

    from climb_ray.baselines.doremi import run_doremi
    from climb_ray.device import pick_device
    from climb_ray.tokens import Shards, token_shares

    device = pick_device("auto")
    if device == "cpu":
        torch.set_num_threads(cfg.proxy.threads or max(1, int(cfg.proxy.cpus_per_trial)))
    from climb_ray.baselines.doremi import doremi_steps

    shards, steps = Shards(tokens_url), doremi_steps(cfg)
    every = max(1, steps // 10)

    def progress(step: int, weights) -> None:  # to the job's log, ten times in all
        if (step + 1) % every == 0 or step + 1 == steps:
            top = sorted(zip(shards.names, weights), key=lambda kv: -kv[1])[:3]
            LOG.info(f"doremi: step {step + 1}/{steps}, domain weights now " + ", ".join(f"{n} {w:.3f}" for n, w in top))

    LOG.info(f"doremi: training the reference proxy ({steps} steps on {cfg.doremi.reference})")
    result = run_doremi(shards.arrays, shards.names, cfg, int(shards.meta["vocab_size"]), device=device,
                        progress=progress, shares=token_shares(shards.meta))  # the whole corpus's, not the sample's
    return {**result.to_json(), "device": device}


def run_doremi_task(cfg: Config, tokens_url: str) -> dict:
    """DoReMi's domain weights for the run's token shards (DoReMiResult.to_json())."""
    return ray.get(ray.remote(max_retries=0, **trial_resources(cfg))(_doremi).remote(cfg, tokens_url))


def evaluate(cfg: Config, tokens_url: str, jobs: list[tuple[str, list[float], int, str | None]], done):
    """Train and score one proxy per (key, weights, seed, proxy.command's trial folder or None), all queued
    at once; done(key, result) is called as each finishes, so a killed compare keeps the proxies already trained."""
    task = ray.remote(max_retries=1, **trial_resources(cfg))(_train_and_score)
    pending = {task.remote(cfg, tokens_url, list(weights), seed, trial_dir): key
               for key, weights, seed, trial_dir in jobs}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        key = pending.pop(ready[0])
        done(key, ray.get(ready[0]))
