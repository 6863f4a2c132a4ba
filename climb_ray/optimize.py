"""The best predicted mixture under constraints, found by searching the predictor (no training).

Constraints are per-cluster bounds lo <= w <= hi on the simplex (sum w = 1): user minimums and
maximums, excluded clusters (hi = 0) and epoch caps (a cluster of T tokens may give at most
max_epochs * T tokens to a training run of B tokens: hi <= max_epochs * T / B). The search scores
Dirichlet candidates around the token-share prior (as the CLIMB proposal does) and uniform ones,
each projected onto the feasible set, then refines around the best few; tree predictors are
piecewise constant, so a sampling search is the right tool, not gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from climb_ray.mixture import weight_caps

BISECTION_STEPS = 60  # halvings of the shift tau: far below float precision of the weights
STRENGTHS = (0.3, 1.0, 3.0, 10.0)  # Dirichlet concentrations of the global candidates
LOCAL_STRENGTHS = (30.0, 100.0, 300.0, 1000.0)  # concentrations around the elite (larger = closer)
CHUNK_CELLS = 1 << 20  # candidates x clusters made and scored at once: memory stays a few times 8 MiB


class ConstraintError(ValueError):
    """The constraints cannot be met together; the message says which value."""


@dataclass
class Bounds:
    lo: np.ndarray  # lowest weight of each cluster
    hi: np.ndarray  # highest weight of each cluster (0 = excluded)


def bounds(names: list[str], *, minimum: dict | None = None, maximum: dict | None = None,
           exclude: list | None = None, tokens: np.ndarray | None = None, token_budget: float | None = None,
           max_epochs: float | None = None) -> Bounds:
    """Per-cluster bounds from user constraints; errors name the cluster and the values."""
    k = len(names)
    lo, hi = np.zeros(k), np.ones(k)
    for label, given, target in (("min", minimum, lo), ("max", maximum, hi)):
        for name, value in (given or {}).items():
            if name not in names:
                raise ConstraintError(f"{label} names cluster {name!r}; clusters are {', '.join(names)}")
            value = float(value)
            if not np.isfinite(value) or value < 0 or value > 1:
                raise ConstraintError(f"{label}[{name}] = {value!r}: must be a number in [0, 1]")
            target[names.index(name)] = value
    for name in exclude or []:
        if name not in names:
            raise ConstraintError(f"exclude names cluster {name!r}; clusters are {', '.join(names)}")
        hi[names.index(name)] = 0.0
    if max_epochs is not None and (not np.isfinite(max_epochs) or max_epochs <= 0):
        raise ConstraintError(f"max_epochs = {max_epochs!r}: must be positive")
    if token_budget is not None:
        if tokens is None or max_epochs is None:
            raise ConstraintError("token_budget needs the clusters' token counts and max_epochs")
        if not np.isfinite(token_budget) or token_budget <= 0:
            raise ConstraintError(f"token_budget = {token_budget!r}: must be a positive number of tokens")
        hi = np.minimum(hi, weight_caps(tokens, token_budget, max_epochs))
    for i, name in enumerate(names):
        if lo[i] > hi[i] + 1e-12:
            raise ConstraintError(f"cluster {name}: minimum {lo[i]:g} is above its maximum {hi[i]:g} "
                                  "(max, exclude and epoch caps included)")
    if lo.sum() > 1 + 1e-9:
        raise ConstraintError(f"the minimums add up to {lo.sum():g}, more than 1")
    if hi.sum() < 1 - 1e-9:
        raise ConstraintError(f"the maximums (with exclusions and epoch caps) add up to {hi.sum():.4g}, less than 1: "
                              "allow more clusters, raise max weights or max_epochs, or lower token_budget")
    return Bounds(lo, np.minimum(hi, 1.0))


def project(v: np.ndarray, b: Bounds) -> np.ndarray:
    """Each row of v moved to the nearest point (Euclidean) with lo <= w <= hi and sum w = 1:
    w = clip(v - tau, lo, hi), tau found by bisection (the sum falls as tau grows)."""
    v = np.atleast_2d(np.asarray(v, dtype=np.float64))
    low = (v - b.hi).min(axis=1)  # at tau = low every weight sits at hi: sum >= 1
    high = (v - b.lo).max(axis=1)  # at tau = high every weight sits at lo: sum <= 1
    for _ in range(BISECTION_STEPS):
        tau = 0.5 * (low + high)
        over = np.clip(v - tau[:, None], b.lo, b.hi).sum(axis=1) > 1
        low, high = np.where(over, tau, low), np.where(over, high, tau)
    return np.clip(v - high[:, None], b.lo, b.hi)  # sums to 1 within 1e-12 (or to sum(hi) if that is a hair short)


def optimize(predict, prior: np.ndarray, b: Bounds, *, n_candidates: int, rng: np.random.Generator,
             rounds: int = 3, elite: int = 16) -> dict:
    """Highest predicted mixture within the bounds. `predict` maps (n, k) -> (n,), higher is better."""
    prior = np.asarray(prior, dtype=np.float64) * (b.hi > 0)
    prior = prior / prior.sum() if prior.sum() > 0 else (b.hi > 0) / np.sum(b.hi > 0)
    k = len(prior)
    chunk = max(CHUNK_CELLS // k, 1)

    def global_draws(n: int) -> np.ndarray:
        strength = rng.choice(STRENGTHS, size=n)
        alpha = np.where(rng.random(n)[:, None] < 0.5, strength[:, None] * np.maximum(prior, 1e-3),
                         strength[:, None] / k)
        return project(rng.gamma(alpha) + 1e-12, b)

    n_global = max(n_candidates // 2, 1)
    candidates, scores = _top(global_draws, n_global, predict, elite, chunk)
    scored = n_global
    per_round = max((n_candidates - n_global) // max(rounds, 1), elite)
    for _ in range(rounds):
        top = candidates

        def around_top(n: int) -> np.ndarray:
            centres = top[rng.integers(0, len(top), n)]
            local = rng.choice(LOCAL_STRENGTHS, size=n)[:, None]
            return project(rng.gamma(local * centres + 0.05) / local, b)

        moved, moved_scores = _top(around_top, per_round, predict, elite, chunk)
        both = np.argsort(-np.concatenate([scores, moved_scores]), kind="stable")[:elite]
        candidates, scores = np.vstack([candidates, moved])[both], np.concatenate([scores, moved_scores])[both]
        scored += per_round
    best = int(np.argmax(scores))
    w = candidates[best]
    return {"weights": w, "predicted": float(scores[best]), "candidates_scored": scored,
            "at_min": np.isclose(w, b.lo, atol=1e-6) & (b.lo > 0), "at_max": np.isclose(w, b.hi, atol=1e-6) & (b.hi > 0) & (b.hi < 1)}


def _top(make, n: int, predict, keep: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """The `keep` best of n candidates from make(m), made and scored `chunk` at a time."""
    best, best_scores = None, None
    for start in range(0, n, chunk):
        part = make(min(chunk, n - start))
        part_scores = predict(part)
        if best is not None:
            part, part_scores = np.vstack([best, part]), np.concatenate([best_scores, part_scores])
        order = np.argsort(-part_scores, kind="stable")[:keep]
        best, best_scores = part[order], part_scores[order]
    return best, best_scores
