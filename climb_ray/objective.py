"""The objective as separate components: each target (target.paths, then target.tasks) is a component with its own score,
the trial's score their weighted mean (target.weights). Trials record every component, so the
weights can change after the search: the scores are recombined, a predictor is fitted per component,
and the Pareto front of the predicted components shows what one component costs another.

Every component is higher-is-better (a text target scores -loss, a multiple-choice one its accuracy),
so the front is the set of mixtures no other mixture beats or equals in every component.
"""

from __future__ import annotations

import os

import numpy as np

COLUMN = "score/"  # trials.parquet's column of a component: score/<name>
FRONT_CANDIDATES = 10_000  # candidate mixtures whose predicted components the Pareto front is drawn from


class ObjectiveError(ValueError):
    """Objective weights that do not fit the components; the message names the bad value."""


def component_names(paths: list[str]) -> list[str]:
    """Each target's name: its file (or folder) name without extensions; a name taken by an earlier
    target gets -<position>, then more -<position> until it is unused (data/a/val.jsonl, data/b/val.jsonl
    -> val, val-1)."""
    names: list[str] = []
    for i, path in enumerate(paths):
        name = os.path.basename(path.rstrip("/")) or path
        while "." in name.strip("."):
            name = name.rsplit(".", 1)[0]
        while name in names:
            name = f"{name}-{i}"
        names.append(name)
    return names


def target_components(t) -> list[str]:
    """The components of TargetConfig `t`: its paths' names, then its tasks' (a task YAML by its file name)."""
    return component_names([*t.paths, *t.tasks])


def shares(weights, n: int) -> np.ndarray:
    """target.weights as shares of the largest (empty = equal): huge weights (1e308) would sum to inf."""
    w = np.array(weights if len(weights) else [1.0] * n, dtype=np.float64)
    return w / w.max()


def combine(scores, share: np.ndarray) -> float:
    """The weighted mean score of the components (the trial's score)."""
    return float(sum(s * w for s, w in zip(scores, share)) / share.sum())


def objective_weights(given: dict, names: list[str], where: str = "weights") -> np.ndarray:
    """{component: weight} (components left out weigh 0) as shares in `names`' order; ObjectiveError
    naming an unknown component, a negative or non-finite weight, or weights that are all 0."""
    w = np.zeros(len(names))
    for name, value in given.items():
        if name not in names:
            raise ObjectiveError(f"{where}: unknown component {name!r}; components are {', '.join(names)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ObjectiveError(f"{where}[{name!r}] = {value!r}: a weight must be a finite number >= 0")
        w[names.index(name)] = float(value)
    if w.max(initial=0.0) <= 0:
        raise ObjectiveError(f"{where}: the weights are all 0 (components are {', '.join(names)})")
    return w / w.max()


def recorded(trials) -> list[str] | None:
    """The components every measured trial (search.Trial or its state dict) recorded, in their order;
    None when a measured trial recorded none (a search made before they were, or proxy.command's single score)."""
    names = None
    for t in trials:  # search.Trial, or its recorded state (a dict)
        status, components = (t["status"], t.get("components")) if isinstance(t, dict) else (t.status, t.components)
        if status != "done":
            continue
        if not components:
            return None
        names = list(components) if names is None else [n for n in names if n in components]
    return names or None


def reweightable(cfg, trials) -> bool:
    """Whether the trials' scores can be recombined with cfg's target.weights: every measured trial (search.Trial
    or its state dict) recorded each target's score (proxy.command reports one score, not each target's)."""
    return not cfg.proxy.command and set(target_components(cfg.target)) <= set(recorded(trials) or [])


def reweight(trials, names: list[str], weights) -> None:
    """Each measured trial's score recombined from its components with target.weights `weights` (one per
    name); a trial whose new score is not finite is failed."""
    share = shares(weights, len(names))
    for t in trials:
        if t.status == "done":
            t.score = combine([t.components[n] for n in names], share)
            if not np.isfinite(t.score):
                t.status = "failed"


def table(rows, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(distinct mixtures, mean of each component over their measurements) from (weights, {component:
    score}) pairs, in the order of first appearance (repeats of a mixture averaged, as the search does)."""
    groups: dict[bytes, list] = {}
    for weights, components in rows:
        w = np.asarray(weights, dtype=np.float64)
        groups.setdefault(np.round(w, 9).tobytes(), [w, []])[1].append([components[n] for n in names])
    x = np.array([g[0] for g in groups.values()])
    y = np.array([np.mean(g[1], axis=0) for g in groups.values()])
    return x, y


def fit_components(x: np.ndarray, y: np.ndarray, p, *, clusters: list[str], components: list[str],
                   seed: int) -> dict:
    """A predictor (predictor.Predictor, settings `p`) per component, fitted on its column of y."""
    from climb_ray.predictor import Predictor

    return {name: Predictor.fit(x, y[:, j], p, names=clusters, seed=seed + len(x)) for j, name in enumerate(components)}


def predict_components(predictors: dict, x: np.ndarray) -> np.ndarray:
    """(n, components) predicted scores of the mixtures x."""
    return np.stack([p.predict(x) for p in predictors.values()], axis=1)


def predicted_front(predictors: dict, sampler, measured: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(the candidates on the Pareto front of their predicted components, those predictions); the candidates
    are FRONT_CANDIDATES mixtures the sampler (samplers.RegMixSampler) draws with `seed`, and the measured ones."""
    candidates = np.vstack([sampler.candidates(FRONT_CANDIDATES, np.random.default_rng(seed)), measured])
    predicted = predict_components(predictors, candidates)
    front = pareto_front(predicted)
    return candidates[front], predicted[front]


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the rows of `points` (n, m) no other row dominates (>= in every column, higher is better),
    ordered by the first column, best first; of rows equal in every column, the first."""
    points = np.asarray(points, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(points).all(axis=1))
    order = finite[np.lexsort(tuple(-points[finite, j] for j in reversed(range(points.shape[1]))))]
    if points.shape[1] == 2:  # a sweep: kept when it beats every row before it in the second column
        second = points[order, 1]
        before = np.concatenate([[-np.inf], np.maximum.accumulate(second)[:-1]])
        return order[second > before].astype(np.int64)
    front: list[int] = []
    for i in order:  # no row after i in this order beats it everywhere: only the front so far can dominate it
        if not front or not (points[front] >= points[i]).all(axis=1).any():
            front.append(int(i))
    return np.array(front, dtype=np.int64)
