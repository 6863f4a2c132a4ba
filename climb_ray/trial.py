"""One proxy trial: train a proxy LM on one mixture of the run's token shards and score it on the target.

`ProxyRunner` loads the shards, tokenizer and target once; each call is one trial (Ray Tune reuses
the runner across trials, the `climb-ray proxy` command calls it once). With proxy.command set,
`make_runner` gives climb_ray.command_trial's runner instead.
"""

from __future__ import annotations

import posixpath
import time

import numpy as np

from climb_ray.artifacts import TOKENIZER
from climb_ray.config import Config


def make_runner(cfg: Config, tokens_url: str):
    """The runner of one trial: proxy.command's (your trainer) when it is set, else the built-in proxy's."""
    if cfg.proxy.command:
        from climb_ray.command_trial import CommandRunner

        return CommandRunner(cfg, tokens_url)
    return ProxyRunner(cfg, tokens_url)


class ProxyRunner:
    def __init__(self, cfg: Config, tokens_url: str, *, device: str = "auto"):
        from tokenizers import Tokenizer

        import fsspec

        from climb_ray.evaluate import check_targets, load_target
        from climb_ray.lm_eval_tasks import load_tasks
        from climb_ray.device import pick_device
        from climb_ray.tokens import Shards

        check_targets(cfg.target)
        self.cfg = cfg
        self.shards = Shards(tokens_url)
        with fsspec.open(f"{tokens_url.rstrip('/')}/{posixpath.basename(TOKENIZER)}", "r") as src:
            self.tokenizer = Tokenizer.from_str(src.read())
        self.eot, self.vocab_size = int(self.shards.meta["eot_id"]), int(self.shards.meta["vocab_size"])
        if cfg.proxy.init == "pretrained":  # a wrong tokenizer is named here, not by an index error mid-trial
            from climb_ray.proxy import check_pretrained

            check_pretrained(cfg.proxy, self.tokenizer, self.vocab_size)
        self.targets = [load_target(path, self.tokenizer, cfg.target) for path in cfg.target.paths]
        self.targets += load_tasks(cfg.target, self.tokenizer, self.eot)
        self.device = pick_device(device)
        self._threads()

    def _threads(self) -> None:
        import torch

        if self.device == "cpu":
            p = self.cfg.proxy
            torch.set_num_threads(p.threads or max(1, int(p.cpus_per_trial)))

    @property
    def names(self) -> list[str]:
        return self.shards.names

    def stream(self, weights, seed: int):
        from climb_ray.mixture import MixtureStream

        p = self.cfg.proxy
        return MixtureStream(self.shards.arrays, self.names, weights, n_sequences=p.sequences,
                             seq_len=p.context, max_epochs=self.cfg.search.max_epochs, seed=seed)

    def __call__(self, weights, *, seed: int, every: int = 0, report=None) -> dict:
        """Train on `weights` (one per cluster) with `seed`; the score and what went into it.
        report(step, loss) is called every `every` training steps (proxy.train)."""
        from climb_ray.evaluate import score_targets
        from climb_ray.proxy import build_model, train

        p = self.cfg.proxy
        start = time.perf_counter()
        stream = self.stream(weights, seed)
        model = build_model(p, self.vocab_size, seed=seed)
        stats = train(model, (stream.batch(i, p.batch_size) for i in range(p.steps)), p, device=self.device,
                      every=every, report=report)
        trained = time.perf_counter()
        scores = score_targets(model, self.targets, self.cfg.target, eot=self.eot, seq_len=p.context,
                               device=self.device)
        return {
            "score": scores["score"], "direction": scores["direction"], "targets": scores["targets"],
            "weights": {n: float(w) for n, w in zip(self.names, stream.weights)},
            "sequences": {n: int(c) for n, c in zip(self.names, stream.counts)},
            "epochs": {n: float(e) for n, e in zip(self.names, stream.epochs)},
            "seed": seed, "device": self.device, "train_tokens": stats.tokens, "train_steps": stats.steps,
            "train_loss_last": float(np.mean(stats.losses[-5:])), "train_tokens_per_s": stats.tokens_per_second,
            "train_seconds": trained - start, "score_seconds": time.perf_counter() - trained,
            "parameters": int(sum(t.numel() for t in model.parameters())),
        }
