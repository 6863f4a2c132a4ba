"""Mixture weights and the training stream they define.

A mixture is a point on the simplex: one weight per super-cluster, summing to 1. Training on it
for a budget of N sequences means drawing exactly `allocate(weights, N)` sequences from each
cluster (largest-remainder rounding, so the counts add up to N) and shuffling them together.
A cluster may be passed over at most `max_epochs` times (paper: 15): a mixture asking for more
raises MixtureError.
"""

from __future__ import annotations

import json
import math

import numpy as np


class MixtureError(ValueError):
    """The weights are not a usable mixture for these clusters; the message says which value."""


SUM_TOLERANCE = 1e-3  # weights given as a mixture (exact_sum) must sum to 1 within this


def mixture_from(item, names: list[str], *, exact_sum: bool = False, where: str = "weights") -> np.ndarray:
    """The one reader of a mixture, for the command line, the config and HTTP requests: a
    {cluster: weight} mapping (clusters left out weigh 0) or numbers in cluster order, each finite and
    >= 0, rescaled to sum to 1 (with exact_sum they must already, within SUM_TOLERANCE). Errors name
    the bad value as `where[cluster]` or `where[i]`."""
    if isinstance(item, dict):
        w = np.zeros(len(names))
        for name, value in item.items():
            if name not in names:
                raise MixtureError(f"{where}: unknown cluster {name!r}; clusters are {', '.join(names)}")
            w[names.index(name)] = _weight(value, f"{where}[{name!r}]", name)
    elif isinstance(item, (list, tuple)):
        if len(item) != len(names):
            raise MixtureError(f"{where} has {len(item)} weights, clusters are {len(names)} ({', '.join(names)})")
        w = np.array([_weight(v, f"{where}[{i}]", names[i]) for i, v in enumerate(item)], dtype=np.float64)
    else:
        raise MixtureError(f"{where} must be an object {{cluster: weight}} or a list of {len(names)} weights, "
                           f"got {type(item).__name__}")
    if not len(w) or w.max() <= 0:
        raise MixtureError(f"{where}: the weights are all 0")
    with np.errstate(over="ignore"):
        total = float(w.sum())
    if exact_sum and abs(total - 1.0) > SUM_TOLERANCE:
        raise MixtureError(f"{where}: the weights sum to {total:.6g}, not 1 (within {SUM_TOLERANCE:g}); "
                           "send normalize: true to rescale them")
    w = w / w.max()  # 1e308,1e308 sums to inf: scale first, so huge weights keep their proportions
    return w / w.sum()


def _weight(value, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MixtureError(f"{where} = {value!r}: the weight of {name} must be a number")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise MixtureError(f"{where} = {value!r}: the weight of {name} must be finite and >= 0")
    return value


def normalise(weights, names: list[str]) -> np.ndarray:
    """Weights (any array) as float64 summing to 1 (mixture_from)."""
    return mixture_from(np.asarray(weights, dtype=np.float64).reshape(-1).tolist(), names, where="mixture")


def parse_weights(spec: str, names: list[str], shares: np.ndarray | None = None) -> np.ndarray:
    """A mixture from the command line: `uniform`, `prior` (token shares), `0.5,0.3,0.2` (cluster
    order), `sc00=0.7,sc03=0.3` (others 0) or a JSON object / list of the same."""
    spec = spec.strip()
    if spec == "uniform":
        return np.full(len(names), 1.0 / len(names))
    if spec == "prior":
        if shares is None:
            raise MixtureError("'prior' needs the clusters' token counts")
        return normalise(shares, names)
    if spec.startswith(("{", "[")):
        try:
            value = json.loads(spec)
        except json.JSONDecodeError as err:
            raise MixtureError(f"weights {spec!r} are not valid JSON ({err.msg})") from None
        parts = value if isinstance(value, list) else [f"{k}={v}" for k, v in value.items()]
    else:
        parts = [p for p in spec.split(",") if p.strip()]
    if parts and all(isinstance(p, str) and "=" in p for p in parts):
        named = {}
        for part in parts:
            key, _, value = part.partition("=")
            named[key.strip()] = _number(value)
        return mixture_from(named, names, where="mixture")
    return mixture_from([_number(p) for p in parts], names, where="mixture")


def _number(text) -> float:
    try:
        if isinstance(text, bool):
            raise TypeError
        return float(text)
    except (TypeError, ValueError):
        raise MixtureError(f"weight {text!r} is not a number") from None


def weight_caps(tokens, budget: float, max_epochs: float, *, seq_len: int = 0) -> np.ndarray:
    """The one epoch cap: the largest weight each cluster of `tokens` can take in a training run of
    `budget` tokens without passing over it more than max_epochs times (max_epochs * tokens / budget).
    With seq_len, in whole sequences of that length, and 0 for a cluster shorter than one sequence."""
    tokens = np.asarray(tokens, dtype=np.float64)
    if not seq_len:
        return max_epochs * tokens / budget
    sequences = np.floor(max_epochs * tokens / seq_len)
    sequences[tokens < seq_len] = 0.0
    return sequences * seq_len / budget


def allocate(weights: np.ndarray, n: int) -> np.ndarray:
    """Integer counts proportional to `weights` that add up to exactly n (largest remainder)."""
    exact = np.asarray(weights, dtype=np.float64) * n
    counts = np.floor(exact).astype(np.int64)
    short = n - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")  # ties go to the lower cluster index
    counts[order[:short]] += 1
    return counts


def check_epochs(counts: np.ndarray, seq_len: int, tokens: np.ndarray, names: list[str], max_epochs: float) -> np.ndarray:
    """Passes over each cluster that `counts` sequences take; MixtureError when one exceeds max_epochs."""
    need = counts.astype(np.float64) * seq_len
    epochs = np.divide(need, tokens, out=np.full(len(need), np.inf), where=tokens > 0)
    epochs[counts == 0] = 0.0
    for i in np.flatnonzero(epochs > max_epochs):
        raise MixtureError(
            f"mixture needs {int(need[i])} tokens from cluster {names[i]}, which has {int(tokens[i])}: "
            f"{epochs[i]:.1f} passes over it, more than search.max_epochs={max_epochs:g}")
    for i in np.flatnonzero((counts > 0) & (tokens < seq_len)):
        raise MixtureError(f"cluster {names[i]} has {int(tokens[i])} tokens, fewer than one sequence of {seq_len}")
    return epochs


def cluster_starts(n_tokens: int, count: int, seq_len: int, rng: np.random.Generator) -> np.ndarray:
    """`count` window starts in a cluster of n_tokens: each pass takes the non-overlapping windows
    (at a random offset) in random order, so no window repeats before every window was used."""
    per_pass = n_tokens // seq_len
    starts = []
    while sum(len(s) for s in starts) < count:
        offset = int(rng.integers(0, n_tokens - per_pass * seq_len + 1))
        starts.append(offset + seq_len * rng.permutation(per_pass))
    return np.concatenate(starts)[:count] if starts else np.zeros(0, dtype=np.int64)


class MixtureStream:
    """The sequences of one proxy training: exact per-cluster counts, shuffled, fixed by the seed."""

    def __init__(self, arrays: list[np.ndarray], names: list[str], weights, *, n_sequences: int, seq_len: int,
                 max_epochs: float, seed: int):
        self.arrays, self.seq_len = arrays, seq_len
        self.weights = normalise(weights, names)
        self.counts = allocate(self.weights, n_sequences)
        tokens = np.array([len(a) for a in arrays], dtype=np.int64)
        self.epochs = check_epochs(self.counts, seq_len, tokens, names, max_epochs)
        rng = np.random.default_rng(seed)
        clusters, starts = [], []
        for i, count in enumerate(self.counts):
            clusters.append(np.full(count, i, dtype=np.int64))
            starts.append(cluster_starts(len(arrays[i]), int(count), seq_len, rng))
        order = rng.permutation(n_sequences)
        self.cluster = np.concatenate(clusters)[order]
        self.start = np.concatenate(starts)[order].astype(np.int64)

    def __len__(self) -> int:
        return len(self.cluster)

    def batch(self, index: int, batch_size: int) -> np.ndarray:
        """Sequences index*batch_size ... as an int64 array (batch, seq_len)."""
        rows = range(index * batch_size, min((index + 1) * batch_size, len(self)))
        return np.stack([np.asarray(self.arrays[self.cluster[r]][self.start[r]:self.start[r] + self.seq_len],
                                    dtype=np.int64) for r in rows])
