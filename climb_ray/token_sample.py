"""The proxies' token sample (tokens.sample): per cluster, only the documents whose key (a seeded hash of
the doc_id) falls in the lowest key bins, enough for the largest proxy budget times SAMPLE_MARGIN, or the
whole cluster when it is smaller. tokens/meta.json keeps each cluster's whole-corpus counts (tokens
estimated from the sample's tokens per unit of the cluster stage's n_tokens) and, under "sample", the
sample's own."""

from __future__ import annotations

import numpy as np

SAMPLE_MARGIN = 2.0  # a sampled cluster holds about this many times the budget it is drawn for
SAMPLE_ROUNDS = 3  # tokenizing passes at most: one more when a cluster's sample came out short of its budget


def sample_need(budget: float, max_epochs: float) -> float:
    """Tokens a sampled cluster must hold for a proxy of `budget` tokens: any weight within the epoch
    caps of the whole cluster then stays within max_epochs passes over the sample."""
    return budget / min(1.0, max_epochs)


def sample_bins(sizes: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per cluster, the last key bin of its sample: the first where its size per bin (clusters, bins),
    added up, reaches want[c] (the last bin, all of it, when the cluster is smaller)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    totals = np.cumsum(sizes, axis=1)
    return np.array([min(int(np.searchsorted(totals[c], want[c], side="left")), sizes.shape[1] - 1)
                     for c in range(len(sizes))], dtype=np.int64)


def estimate_tokens(sample_tokens: np.ndarray, sample_size: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Each cluster's whole-corpus tokens: its sample's tokens per unit of size, times its size."""
    sample_tokens, sample_size = np.asarray(sample_tokens, np.float64), np.asarray(sample_size, np.float64)
    ratio = np.divide(sample_tokens, sample_size, out=np.zeros(len(sample_tokens)), where=sample_size > 0)
    return np.where(sample_size >= size, sample_tokens, np.round(ratio * np.asarray(size, np.float64))).astype(np.int64)


def check_sample(meta: dict, budget: int, max_epochs: float, what: str) -> None:
    """ConfigError when a sampled cluster (meta["sample"]) holds too few tokens for proxies of `budget`."""
    from climb_ray.config import ConfigError

    sample = meta.get("sample")
    if not sample:
        return
    need = sample_need(budget, max_epochs)
    for name in meta["clusters"]:
        held = int(sample["tokens"][name])
        if not sample["whole"][name] and held < need:
            raise ConfigError(
                f"tokens/ holds a sample of {held:,} tokens of cluster {name}, sized for proxies of "
                f"{int(sample['budget']):,} tokens; {what} reads {budget:,} (search.max_epochs={max_epochs:g}): "
                "rerun with --redo tokens (tokens.sample=auto sizes it for the current settings) or set tokens.sample")
