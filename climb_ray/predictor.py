"""The LightGBM predictor: mixture weights -> score, with the paper's settings (DESIGN.md).

Fit: a random 90/10 split (`valid_fraction`), boosting with early stopping on the held-out part
(patience min(early_stopping_max, validation size)); its Spearman correlation and mean absolute
error are reported with every fit. Saved as LightGBM's own text format plus a JSON sidecar
(cluster names, score direction, version, quality); never pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from climb_ray.config import PredictorConfig

FORMAT_VERSION = 1
MIN_VALID = 3  # fewer held-out results than this: fit on all, no early stopping, no quality figures


def lgb_params(p: PredictorConfig, seed: int, threads: int) -> dict:
    return {"objective": "regression", "learning_rate": p.learning_rate, "max_depth": p.max_depth,
            "num_leaves": max(2, 2 ** p.max_depth - 1), "min_data_in_leaf": p.min_child_samples,
            "lambda_l1": p.reg_alpha, "lambda_l2": p.reg_lambda, "min_data_in_bin": 1,
            "seed": seed, "deterministic": True, "force_row_wise": True, "num_threads": threads, "verbose": -1}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


@dataclass
class Predictor:
    booster: object
    names: list[str]
    direction: str = "higher_is_better"
    quality: dict = field(default_factory=dict)  # spearman, mae, n_train, n_valid, rounds
    fitted_at: str = ""  # UTC time of the fit, ISO 8601
    target: tuple[float, float] = (0.0, 1.0)  # (shift, scale): the booster predicts (score - shift) / scale

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, p: PredictorConfig, *, names: list[str], seed: int,
            direction: str = "higher_is_better", threads: int = 1) -> "Predictor":
        import lightgbm as lgb

        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if len(x) != len(y) or len(x) < 2:
            raise ValueError(f"predictor needs at least 2 results with one score each, got {len(x)} and {len(y)}")
        if x.shape[1] != len(names):
            raise ValueError(f"results have {x.shape[1]} weights, clusters are {len(names)}")
        order = np.random.default_rng(seed).permutation(len(x))
        n_valid = int(round(p.valid_fraction * len(x)))
        params = lgb_params(p, seed, threads)
        target = (float(y.mean()), float(y.std())) if p.standardize and y.std() > 0 else (0.0, 1.0)
        z = (y - target[0]) / target[1]
        if n_valid < MIN_VALID:
            booster = lgb.train(params, lgb.Dataset(x, z), num_boost_round=p.num_rounds)
            quality = {"spearman": float("nan"), "mae": float("nan"), "n_train": len(x), "n_valid": 0,
                       "rounds": p.num_rounds}
            return cls(booster, list(names), direction, quality, _now(), target)
        valid, train = order[:n_valid], order[n_valid:]
        patience = min(p.early_stopping_max, n_valid)
        train_set = lgb.Dataset(x[train], z[train])
        booster = lgb.train(params, train_set, num_boost_round=p.num_rounds,
                            valid_sets=[lgb.Dataset(x[valid], z[valid], reference=train_set)],
                            callbacks=[lgb.early_stopping(patience, verbose=False)])
        guess = booster.predict(x[valid], num_iteration=booster.best_iteration) * target[1] + target[0]
        quality = {"spearman": spearman(guess, y[valid]), "mae": float(np.mean(np.abs(guess - y[valid]))),
                   "n_train": len(train), "n_valid": n_valid, "rounds": int(booster.best_iteration or p.num_rounds)}
        return cls(booster, list(names), direction, quality, _now(), target)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] != len(self.names):
            raise ValueError(f"mixture has {x.shape[1]} weights, clusters are {len(self.names)}")
        raw = self.booster.predict(x, num_iteration=self.quality.get("rounds") or None)
        return raw * self.target[1] + self.target[0]

    def to_text(self) -> tuple[str, str]:
        """(LightGBM model text, JSON sidecar)."""
        import hashlib

        model = self.booster.model_to_string()
        sidecar = {"format_version": FORMAT_VERSION, "names": self.names, "direction": self.direction,
                   "quality": self.quality, "fitted_at": self.fitted_at, "target": list(self.target),
                   "model_sha256": hashlib.sha256(model.encode("utf-8")).hexdigest()}
        return model, json.dumps(sidecar, indent=2, allow_nan=True)

    @classmethod
    def from_text(cls, model: str, sidecar: str) -> "Predictor":
        import lightgbm as lgb

        import hashlib

        meta = json.loads(sidecar)
        if meta.get("model_sha256") not in (None, hashlib.sha256(model.encode("utf-8")).hexdigest()):
            raise ValueError("the predictor's model text and its JSON sidecar are from different fits "
                             "(written while being read? try again)")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"predictor sidecar has format_version {meta.get('format_version')!r}, "
                             f"this climb-ray reads {FORMAT_VERSION}")
        return cls(lgb.Booster(model_str=model), meta["names"], meta["direction"], meta["quality"],
                   meta.get("fitted_at", ""), tuple(meta.get("target", (0.0, 1.0))))


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
