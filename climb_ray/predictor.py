"""The LightGBM predictor: mixture weights -> score, as an ensemble with out-of-fold quality.

Fit (default, `ensemble` = K > 1): K-fold cross-fitting (lightgbm.cv) chooses the number of rounds
where the mean held-out loss is least and gives every result an out-of-fold prediction, from a fit
that did not see it: honest quality figures over all results (Spearman correlation, mean absolute
error) and what the search's answer shrinks measurements towards. Then K fits on bootstrap
resamples of the results, with that many rounds, are the members: their mean is the prediction,
their spread the uncertainty the search explores with (on RegMix's runs, bootstrap members led the
search to answers with 0.64x the regret of the cross-fitted members, docs/search-benchmark.md).
`ensemble: 1` is the paper's single fit on a random 90/10 split (quality from the 10%).

Scale-free (`standardize`, default on): the trees are fitted on z-scored scores, rounded to 12
decimals, so the fit and every prediction's order are the same for scores y and a*y + b (a > 0);
the paper's reg_alpha 1 on raw accuracies (0.25-0.7) leaves the trees unsplit.

Degenerate fit: predictions on the results nearly constant (spread under DEGENERATE_SPREAD of the
scores' spread), or a held-out Spearman that is undefined or not significantly positive at the
one-sided 10% level (DEGENERATE_P: a fit with no information reaches it one time in ten; with K-fold
every result is held out once, so 28 results need 0.25, 56 need 0.17, 112 need 0.12). Fewer than
MIN_TESTED held-out results (the paper's 10% hold-out below 100 results) are too few to test: only
the spread is checked, so the paper preset keeps its rule. `quality["degenerate"]` names the
reason; the search then never lets the predictor choose alone.

Saved as LightGBM's own text format (member after member; member 0 alone is what a plain LightGBM
loader reads) plus a JSON sidecar (cluster names, score direction, version, quality, member
lengths); never pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from climb_ray.config import PredictorConfig

FORMAT_VERSION = 2  # 2: the model text holds the ensemble's members one after another (1: one booster)
READABLE_VERSIONS = (1, 2)
MIN_VALID = 3  # fewer held-out results (per fold) than this: fit on all, no early stopping, no quality figures
DEGENERATE_SPREAD = 0.05  # predictions spreading less than this share of the scores' spread are "nearly constant"
DEGENERATE_P = 0.1  # held-out Spearman not significantly positive at this one-sided level: no information
MIN_TESTED = 10  # fewer held-out results than this: too few to test the Spearman (only the spread is checked)


def min_leaf(p: PredictorConfig, n: int) -> int:
    """Data per leaf: predictor.min_child_samples, but at most a quarter of the n results (at least 2), so
    that a first iteration of a few proxies still gets trees that split (with 8 results and 5 per leaf,
    no split is possible and every prediction is the same)."""
    return min(p.min_child_samples, max(2, n // 4))


def lgb_params(p: PredictorConfig, seed: int, threads: int, n: int = 10**9) -> dict:
    return {"objective": "regression", "learning_rate": p.learning_rate, "max_depth": p.max_depth,
            "num_leaves": max(2, 2 ** p.max_depth - 1), "min_data_in_leaf": min_leaf(p, n),
            "lambda_l1": p.reg_alpha, "lambda_l2": p.reg_lambda, "min_data_in_bin": 1,
            "seed": seed, "deterministic": True, "force_row_wise": True, "num_threads": threads, "verbose": -1}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def degenerate_reason(fitted: np.ndarray, y: np.ndarray, held_out: tuple[float, int] | None) -> str:
    """Why a fit cannot be trusted to rank mixtures ("" when it can): see the module docstring."""
    spread = float(np.std(y))
    if spread == 0:
        return "every result has the same score"
    if np.unique(np.round(fitted, 12)).size < 2 or float(np.std(fitted)) < DEGENERATE_SPREAD * spread:
        return (f"nearly constant predictions (spread {float(np.std(fitted)):.3g} against the scores' "
                f"{spread:.3g}): the trees hardly split")
    if held_out is not None and held_out[1] >= MIN_TESTED:
        rho, n = held_out
        if not np.isfinite(rho) or _one_sided_p(rho, n) > DEGENERATE_P:
            return (f"held-out Spearman {rho:.3g} over {n} results: within what a fit with no information "
                    f"reaches one time in {round(1 / DEGENERATE_P)}")
    return ""


def _one_sided_p(rho: float, n: int) -> float:
    """P(Spearman >= rho | no relation) for n pairs, by the t approximation."""
    from scipy.stats import t

    if n < 3 or rho <= -1:
        return 1.0
    if rho >= 1:
        return 0.0
    return float(t.sf(rho * np.sqrt((n - 2) / (1 - rho * rho)), n - 2))


@dataclass
class Predictor:
    boosters: list  # the ensemble's LightGBM boosters (one with ensemble: 1)
    names: list[str]
    direction: str = "higher_is_better"
    quality: dict = field(default_factory=dict)  # spearman, mae, n_results, n_valid, rounds, members, degenerate
    fitted_at: str = ""  # UTC time of the fit, ISO 8601
    target: tuple[float, float] = (0.0, 1.0)  # (shift, scale): the boosters predict (score - shift) / scale
    rounds: list[int] = field(default_factory=list)  # boosting rounds used by each member
    oof: np.ndarray | None = None  # out-of-fold prediction of each fitted result (not saved)

    @property
    def booster(self):
        return self.boosters[0]

    @property
    def degenerate(self) -> bool:
        return bool(self.quality.get("degenerate"))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, p: PredictorConfig, *, names: list[str], seed: int,
            direction: str = "higher_is_better", threads: int = 1) -> "Predictor":
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if len(x) != len(y) or len(x) < 2:
            raise ValueError(f"predictor needs at least 2 results with one score each, got {len(x)} and {len(y)}")
        if x.shape[1] != len(names):
            raise ValueError(f"results have {x.shape[1]} weights, clusters are {len(names)}")
        target = (float(y.mean()), float(y.std())) if p.standardize and y.std() > 0 else (0.0, 1.0)
        z = np.round((y - target[0]) / target[1], 12) if p.standardize else y
        params = lgb_params(p, seed, threads, len(x))
        order = np.random.default_rng(seed).permutation(len(x))
        members = max(1, p.ensemble)
        folds = (np.array_split(order, members) if members > 1
                 else [order[: int(round(p.valid_fraction * len(x)))]])
        if min(len(f) for f in folds) < MIN_VALID:  # too few results to hold any out: one fit on all
            booster = _train(params, x, z, None, p)
            model = cls([booster], list(names), direction, {}, _now(), target, [p.num_rounds])
            model.quality = {"spearman": float("nan"), "mae": float("nan"), "n_results": len(x), "n_train": len(x),
                             "n_valid": 0, "rounds": p.num_rounds, "members": 1, "validation": "none"}
            model.quality["degenerate"] = degenerate_reason(model.predict(x), y, None)
            return model
        if members > 1:  # lightgbm.cv: one number of rounds for every fold, where the mean held-out loss is least
            fold_models, best = _cross_fit(params, x, z, folds, p)
            rounds = [best] * len(fold_models)
        else:
            fold_models = [_train(params, x[order[len(folds[0]):]], z[order[len(folds[0]):]], (x[folds[0]], z[folds[0]]), p)]
            rounds = [int(fold_models[0].best_iteration or p.num_rounds)]
        oof = np.full(len(x), np.nan)
        for booster, r, held in zip(fold_models, rounds, folds):
            oof[held] = booster.predict(x[held], num_iteration=r) * target[1] + target[0]
        boosters = fold_models if members == 1 else _bag(params, x, z, members, rounds[0], seed)
        held = np.flatnonzero(np.isfinite(oof))
        model = cls(boosters, list(names), direction, {}, _now(), target, rounds, oof if members > 1 else None)
        rho = spearman(oof[held], y[held])
        model.quality = {"spearman": rho, "mae": float(np.mean(np.abs(oof[held] - y[held]))), "n_results": len(x),
                         "n_train": len(x) - (len(held) if members == 1 else len(folds[0])), "n_valid": len(held),
                         "rounds": int(round(float(np.mean(rounds)))), "members": len(boosters),
                         "validation": f"{members}-fold out-of-fold" if members > 1 else "random hold-out"}
        model.quality["degenerate"] = degenerate_reason(model.predict(x), y, (rho, len(held)))
        return model

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_spread(x)[0]

    def predict_spread(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, standard deviation) over the ensemble's members, on the scores' scale."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] != len(self.names):
            raise ValueError(f"mixture has {x.shape[1]} weights, clusters are {len(self.names)}")
        raw = np.array([b.predict(x, num_iteration=r or None) for b, r in zip(self.boosters, self.rounds)])
        raw = raw * self.target[1] + self.target[0]
        return raw.mean(axis=0), raw.std(axis=0)

    def to_text(self) -> tuple[str, str]:
        """(LightGBM model text of every member in turn, JSON sidecar)."""
        import hashlib

        texts = [b.model_to_string() for b in self.boosters]
        model = "".join(texts)
        sidecar = {"format_version": FORMAT_VERSION, "names": self.names, "direction": self.direction,
                   "quality": self.quality, "fitted_at": self.fitted_at, "target": list(self.target),
                   "members": [len(t) for t in texts], "rounds": self.rounds,
                   "model_sha256": hashlib.sha256(model.encode("utf-8")).hexdigest()}
        return model, json.dumps(sidecar, indent=2, allow_nan=True)

    @classmethod
    def from_text(cls, model: str, sidecar: str) -> "Predictor":
        import hashlib

        import lightgbm as lgb

        meta = json.loads(sidecar)
        if meta.get("model_sha256") not in (None, hashlib.sha256(model.encode("utf-8")).hexdigest()):
            raise ValueError("the predictor's model text and its JSON sidecar are from different fits "
                             "(written while being read? try again)")
        if meta.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(f"predictor sidecar has format_version {meta.get('format_version')!r}, "
                             f"this climb-ray reads {', '.join(map(str, READABLE_VERSIONS))}")
        lengths = meta.get("members") or [len(model)]
        if sum(lengths) != len(model):
            raise ValueError(f"the predictor's model text has {len(model)} characters, its sidecar's members "
                             f"{sum(lengths)}")
        starts = np.cumsum([0, *lengths])
        boosters = [lgb.Booster(model_str=model[a:b]) for a, b in zip(starts[:-1], starts[1:])]
        quality = meta["quality"]
        rounds = meta.get("rounds") or [quality.get("rounds")] * len(boosters)
        return cls(boosters, meta["names"], meta["direction"], quality, meta.get("fitted_at", ""),
                   tuple(meta.get("target", (0.0, 1.0))), [int(r) if r else 0 for r in rounds])


def _cross_fit(params: dict, x: np.ndarray, z: np.ndarray, folds: list, p: PredictorConfig):
    """(member boosters, rounds) of K-fold cross-fitting with early stopping on the mean held-out loss
    (patience min(early_stopping_max, smallest fold)): one choice for all folds, so the out-of-fold
    predictions stay nearly unbiased (per-fold early stopping fits each fold's noise)."""
    import lightgbm as lgb

    every = np.arange(len(x))
    pairs = [(np.setdiff1d(every, held), held) for held in folds]
    result = lgb.cv({**params, "metric": "l2"}, lgb.Dataset(x, z), num_boost_round=p.num_rounds, folds=pairs,
                    callbacks=[lgb.early_stopping(min(p.early_stopping_max, min(len(f) for f in folds)),
                                                  verbose=False)], return_cvbooster=True)
    cv = result["cvbooster"]
    return list(cv.boosters), int(cv.best_iteration or p.num_rounds)


def _bag(params: dict, x: np.ndarray, z: np.ndarray, members: int, rounds: int, seed: int) -> list:
    """`members` boosters, each on a bootstrap resample of the results, `rounds` rounds each."""
    import lightgbm as lgb

    rng = np.random.default_rng([seed, 1])
    out = []
    for k in range(members):
        pick = rng.integers(len(x), size=len(x))
        out.append(lgb.train({**params, "seed": seed + k}, lgb.Dataset(x[pick], z[pick]), num_boost_round=rounds))
    return out


def _train(params: dict, x: np.ndarray, z: np.ndarray, valid, p: PredictorConfig):
    import lightgbm as lgb

    train_set = lgb.Dataset(x, z)
    if valid is None:
        return lgb.train(params, train_set, num_boost_round=p.num_rounds)
    patience = min(p.early_stopping_max, len(valid[1]))
    return lgb.train(params, train_set, num_boost_round=p.num_rounds,
                     valid_sets=[lgb.Dataset(valid[0], valid[1], reference=train_set)],
                     callbacks=[lgb.early_stopping(patience, verbose=False)])


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
