"""Where candidate mixtures come from: the RegMix Dirichlet sampler, or a fixed pool of rows.

RegMix sampler (Liu et al., ICLR 2025; settings as in DESIGN.md): prior = each cluster's token
share, sharpened p <- p**temperature and renormalised; for each draw a concentration strength
from 15 log-spaced values in [strength_min, strength_max]; Dirichlet(strength * p); draws with a
weight above min(max_epochs * token share, 1) are rejected; weights below min_weight are set to 0,
the rest rounded to multiples of min_weight; duplicates (L1 <= 1e-5) are dropped.
"""

from __future__ import annotations

import numpy as np

from climb_ray.mixture import weight_caps

DUPLICATE_L1 = 1e-5
N_STRENGTHS = 15


def sharpen(prior: np.ndarray, temperature: float) -> np.ndarray:
    p = np.asarray(prior, dtype=np.float64) ** temperature
    return p / p.sum()


def round_to_grid(w: np.ndarray, step: float) -> np.ndarray:
    """Rows with weights < step set to 0, the rest on multiples of `step`, each row summing to 1."""
    w = np.where(w < step, 0.0, w)
    w = w / w.sum(axis=1, keepdims=True)
    if step <= 0:
        return w
    units = int(round(1.0 / step))
    grid = np.floor(w * units).astype(np.int64)
    short = units - grid.sum(axis=1)
    rest = w * units - grid
    for row in np.flatnonzero(short > 0):  # largest remainders get the missing units
        grid[row, np.argsort(-rest[row], kind="stable")[: short[row]]] += 1
    return grid / units


def is_new(row: np.ndarray, seen: np.ndarray) -> bool:
    return len(seen) == 0 or bool(np.min(np.abs(seen - row).sum(axis=1)) > DUPLICATE_L1)


def fresh_mask(candidates: np.ndarray, seen: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """True for each candidate farther than DUPLICATE_L1 (L1) from every row of `seen`."""
    if len(seen) == 0:
        return np.ones(len(candidates), dtype=bool)
    out = np.empty(len(candidates), dtype=bool)
    for start in range(0, len(candidates), chunk):
        part = candidates[start:start + chunk]
        out[start:start + chunk] = np.abs(part[:, None, :] - seen[None, :, :]).sum(axis=2).min(axis=1) > DUPLICATE_L1
    return out


class RegMixSampler:
    """Dirichlet mixtures around the token-share prior (the paper's initial sampler and candidates)."""

    def __init__(self, prior, *, temperature=0.5, strength_min=0.1, strength_max=5.0, max_epochs=15.0,
                 min_weight=2e-4, cap=None):
        self.prior = np.asarray(prior, dtype=np.float64) / np.sum(prior)
        self.alpha = sharpen(self.prior, temperature)
        self.strengths = np.logspace(np.log10(strength_min), np.log10(strength_max), N_STRENGTHS)
        self.cap = np.minimum(weight_caps(self.prior, 1.0, max_epochs), 1.0)  # shares: a budget of the corpus
        if cap is not None:  # a tighter per-cluster limit, e.g. the proxy budget's real epoch cap
            self.cap = np.minimum(self.cap, cap)
        self.min_weight = min_weight

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """About n raw draws (before rejection and de-duplication)."""
        strength = rng.choice(self.strengths, size=n)
        gammas = rng.gamma(np.maximum(strength[:, None] * self.alpha[None, :], 1e-12))
        gammas[:, self.alpha == 0] = 0.0
        keep = gammas.sum(axis=1) > 0
        w = gammas[keep] / gammas[keep].sum(axis=1, keepdims=True)
        w = round_to_grid(w, self.min_weight)
        return w[np.all(w <= self.cap + 1e-12, axis=1)]

    def sample(self, n: int, rng: np.random.Generator, exclude: np.ndarray | None = None,
               unique: bool = True) -> np.ndarray:
        """n mixtures (fewer only if 50 rounds of oversampling cannot find them), none in `exclude`."""
        k = len(self.prior)
        seen = np.zeros((0, k)) if exclude is None or len(exclude) == 0 else np.asarray(exclude, dtype=np.float64)
        out: list[np.ndarray] = []
        for attempt in range(50):  # oversample, twice as much each time when most draws are rejected
            for row in self.draw(max(4 * (n - len(out)), 64) * 2 ** min(attempt, 8), rng):
                if not unique or is_new(row, seen):
                    out.append(row)
                    if unique:
                        seen = np.vstack([seen, row])
                    if len(out) == n:
                        return np.array(out)
        return np.array(out).reshape(-1, k)

    def candidates(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n mixtures for the predictor to score (duplicates allowed: cheap and harmless)."""
        return _fill(lambda want: self.draw(want, rng), n)

    def around(self, centres: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """About n mixtures near the given ones: Dirichlet(c * (0.95 centre + 0.05 prior)) with a
        concentration c from 15 log-spaced values in [LOCAL_STRENGTH_MIN, LOCAL_STRENGTH_MAX] (the
        larger, the closer), on the weight grid and within the caps; fewer if the caps reject most."""
        centres = np.atleast_2d(np.asarray(centres, dtype=np.float64))
        if n <= 0 or len(centres) == 0:
            return np.zeros((0, len(self.prior)))
        strengths = np.logspace(np.log10(LOCAL_STRENGTH_MIN), np.log10(LOCAL_STRENGTH_MAX), N_STRENGTHS)

        def draw(want: int) -> np.ndarray:
            base = 0.95 * centres[rng.integers(len(centres), size=want)] + 0.05 * self.alpha[None, :]
            w = rng.gamma(np.maximum(rng.choice(strengths, size=want)[:, None] * base, 1e-12))
            w[:, self.alpha == 0] = 0.0
            w = round_to_grid(w[w.sum(axis=1) > 0] / w[w.sum(axis=1) > 0].sum(axis=1, keepdims=True), self.min_weight)
            return w[np.all(w <= self.cap + 1e-12, axis=1)]

        return _fill(draw, n)


LOCAL_STRENGTH_MIN, LOCAL_STRENGTH_MAX = 10.0, 1000.0  # concentrations of the draws around a mixture


def _fill(draw, n: int, rounds: int = 50) -> np.ndarray:
    """Up to n rows from repeated draw(want) calls (each may return fewer rows than asked)."""
    parts, have = [], 0
    for _ in range(rounds):
        if have >= n:
            break
        part = draw(n - have + 64)
        parts.append(part)
        have += len(part)
    return np.concatenate(parts)[:n] if parts else np.zeros((0, 0))


class PoolSampler:
    """A fixed pool of mixtures (e.g. measured runs): sampling and candidates come from its rows."""

    def __init__(self, rows: np.ndarray):
        self.rows = np.asarray(rows, dtype=np.float64)

    def unused(self, exclude: np.ndarray | None) -> np.ndarray:
        if exclude is None or len(exclude) == 0:
            return np.arange(len(self.rows))
        return np.flatnonzero(fresh_mask(self.rows, np.asarray(exclude, dtype=np.float64)))

    def sample(self, n: int, rng: np.random.Generator, exclude: np.ndarray | None = None) -> np.ndarray:
        free = self.unused(exclude)
        return self.rows[rng.choice(free, size=min(n, len(free)), replace=False)]

    def candidates(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.rows
