"""What the HTTP API answers, with no web framework and no Ray inside: a run folder's predictor,
clusters and measured trials loaded once, and the checks every request goes through.

Requests name mixtures as {cluster: weight} (clusters left out weigh 0) or as a list in cluster
order. Weights must be finite and >= 0 and sum to 1 within SUM_TOLERANCE, unless the request asks
to normalise them. Every bad value raises RequestError naming it (the server answers 4xx).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from climb_ray.mixture import SUM_TOLERANCE, MixtureError, mixture_from
from climb_ray.objective import COLUMN, predict_components
from climb_ray.predictor import Predictor
from climb_ray.served_objective import NotAnswerable, RequestError, ServedObjective
from climb_ray.artifacts import BEST_MIXTURE, CLUSTERS, CONFIG_YAML, PREDICTOR, TOKENS_META, TRIALS

TOP_PREDICTED = 100  # predicted-best candidates kept at load for /v1/best
TOP_CANDIDATES = 20_000  # candidates scored at load to find them


# the server imports these from here (RequestError and NotAnswerable are served_objective's)
__all__ = ["NotAnswerable", "NotServable", "RequestError", "ServedModel", "parse_mixture"]


class NotServable(FileNotFoundError):
    """The run folder has no finished search to serve; the message names the missing file."""


def parse_mixture(item, names: list[str], *, normalize: bool, where: str = "weights") -> np.ndarray:
    """One mixture from a request (climb_ray.mixture.mixture_from), its errors as RequestError."""
    try:
        return mixture_from(item, names, exact_sum=not normalize, where=where)
    except MixtureError as err:
        raise RequestError(str(err)) from None


def _finite(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass
class ServedModel(ServedObjective):
    predictor: Predictor
    clusters: list[dict]  # one per super-cluster, in the predictor's order
    measured: list[dict]  # finished trials, best first
    answer: dict  # the search's answer (best_mixture.json)
    info: dict  # version, fitted_at, trials, held-out quality, source
    prior: np.ndarray  # token shares
    max_epochs: float = 15.0  # the run's search.max_epochs: the default epoch cap of /v1/optimize
    top_predicted: list[dict] = field(default_factory=list)
    components: list[str] = field(default_factory=list)  # the targets every measured mixture has a score of
    predictor_cfg: object = None  # the run's predictor settings: each component's predictor is fitted with them
    _fitted: dict = field(default_factory=dict, repr=False)  # the components' predictors and front, once asked for
    _lock: object = field(default_factory=threading.Lock, repr=False)

    @property
    def names(self) -> list[str]:
        return self.predictor.names

    @classmethod
    def load(cls, run_dir: str, predictor: str = PREDICTOR, *, version: str = "", seed: int = 0) -> "ServedModel":
        """Read a finished search from a run folder (local path or URI); raises NotServable naming
        what is missing."""
        import yaml

        from climb_ray.artifacts import RunDir

        run = RunDir(run_dir)
        sidecar_path = predictor[: -len(".txt")] + ".json" if predictor.endswith(".txt") else predictor + ".json"
        for rel in (predictor, sidecar_path, TOKENS_META, CLUSTERS):
            if not run.exists(rel):
                raise NotServable(f"{run.url(rel)} is missing: serve needs a finished search "
                                        "(climb-ray search) in this run folder")
        text = run.read_bytes(predictor)
        sidecar = json.loads(run.read_bytes(sidecar_path))
        model = Predictor.from_text(text.decode("utf-8"), json.dumps(sidecar))
        meta, report = run.read_json(TOKENS_META), run.read_json(CLUSTERS)
        clusters = _clusters(model.names, meta, report)
        prior = np.array([c["token_share"] for c in clusters])
        measured = _measured(run, model) if run.exists(TRIALS) else []
        answer = run.read_json(BEST_MIXTURE) if run.exists(BEST_MIXTURE) else {}
        quality = model.quality
        info = {"version": version or hashlib.sha256(text).hexdigest()[:12], "source": run.url(predictor),
                "fitted_at": sidecar.get("fitted_at") or _modified(run, predictor),
                "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "trials": int(quality.get("n_results", int(quality.get("n_train", 0)) + int(quality.get("n_valid", 0)))),
                "held_out": int(quality.get("n_valid", 0)), "spearman": _finite(quality.get("spearman")),
                "mae": _finite(quality.get("mae")), "rounds": quality.get("rounds"),
                "members": int(quality.get("members", 1)), "validation": quality.get("validation", "random hold-out"),
                "degenerate": quality.get("degenerate") or None,
                "direction": model.direction, "clusters": model.names}
        settings = yaml.safe_load(run.read_bytes(CONFIG_YAML)) or {} if run.exists(CONFIG_YAML) else {}
        max_epochs = (settings.get("search") or {}).get("max_epochs", 15.0)
        components = [n for n in (measured[0].get("components") or {}) if all(n in m.get("components", {})
                                                                              for m in measured)] if measured else []
        info["components"] = components
        served = cls(model, clusters, measured, answer, info, prior, float(max_epochs), components=components,
                     predictor_cfg=_predictor_settings(settings))
        served.top_predicted = served._top_candidates(np.random.default_rng(seed))
        return served

    # -- answers ----------------------------------------------------------------------------------
    def mixtures(self, items: list, *, normalize: bool, where: str = "mixtures") -> np.ndarray:
        if not items:
            raise RequestError(f"{where} is empty: send at least one mixture")
        k = len(self.names)
        if all(isinstance(item, list) and len(item) == k for item in items):  # fast path for big batches
            x = np.asarray(items, dtype=np.float64)
            total = x.sum(axis=1)
            good = np.isfinite(x).all(axis=1) & (x >= 0).all(axis=1) & (total > 0) & np.isfinite(total)
            if not normalize:
                good &= np.abs(total - 1.0) <= SUM_TOLERANCE
            if good.all():
                return x / total[:, None]
        return np.stack([parse_mixture(item, self.names, normalize=normalize, where=f"{where}[{i}]")
                         for i, item in enumerate(items)])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predictor.predict(x)

    def uncertainty(self) -> float | None:
        return self.info["mae"]

    def as_dict(self, w: np.ndarray) -> dict[str, float]:
        return {n: round(float(v), 6) for n, v in zip(self.names, w)}

    def weights_of(self, measured: list[dict]) -> np.ndarray:
        """(n, clusters) weights of measured mixtures."""
        return np.array([[m["weights"][n] for n in self.names] for m in measured])

    def best(self, k: int) -> dict:
        measured = self.measured[:k]
        if measured:
            guesses = self.predict(self.weights_of(measured))
            measured = [{**m, "predicted": float(g)} for m, g in zip(measured, guesses)]
        answer = None
        if self.answer.get("weights"):  # re-predicted: the served model may be newer than the search's answer
            w = np.array([[float(self.answer["weights"].get(n, 0.0)) for n in self.names]])
            answer = {"weights": self.answer["weights"], "predicted": float(self.predict(w)[0]),
                      "source": self.answer.get("answer"), "estimate": self.answer.get("estimate"),
                      "interval": self.answer.get("interval")}
        return {"direction": self.predictor.direction, "uncertainty": self.uncertainty(), "answer": answer,
                "measured": measured, "predicted": self.top_predicted[:k]}

    def optimize(self, *, minimum: dict | None = None, maximum: dict | None = None, exclude: list | None = None,
                 token_budget: float | None = None, max_epochs: float | None = None, n_candidates: int = 20_000,
                 seed: int = 0, weights: dict | None = None) -> dict:
        """The best predicted mixture within the constraints (see climb_ray.optimize); with `weights`
        ({component: weight}), for that objective: the weighted mean of the components' predictors."""
        from climb_ray.optimize import ConstraintError, bounds, optimize

        predict, share, measured = self.predict, None, self.measured
        if weights is not None:
            share = self.objective(weights)
            predictors = self.component_predictors()
            predict = lambda x: predict_components(predictors, x) @ share  # noqa: E731
            measured = sorted(self.measured, key=lambda m: -self.measured_objective(m, share))

        tokens = np.array([c["tokens"] for c in self.clusters], dtype=np.float64)
        if max_epochs is not None and token_budget is None:
            raise RequestError(f"max_epochs = {max_epochs!r} caps clusters only with token_budget (the training "
                               "run's tokens): send both")
        epochs = self.max_epochs if max_epochs is None else max_epochs
        try:
            b = bounds(self.names, minimum=minimum, maximum=maximum, exclude=exclude, tokens=tokens,
                       token_budget=token_budget, max_epochs=epochs)
        except ConstraintError as err:
            raise RequestError(str(err)) from None
        found = optimize(predict, self.prior, b, n_candidates=n_candidates, rng=np.random.default_rng(seed))
        best = next((m for m in measured if all(b.lo[i] - 1e-6 <= m["weights"][n] <= b.hi[i] + 1e-6
                                                 for i, n in enumerate(self.names))), None)
        return {"weights": self.as_dict(found["weights"]), "predicted": found["predicted"],
                "uncertainty": self.uncertainty(), "direction": self.predictor.direction,
                "candidates_scored": found["candidates_scored"],
                "bounds": {n: [round(float(lo), 6), round(float(hi), 6)] for n, lo, hi in zip(self.names, b.lo, b.hi)},
                "at_min": [n for n, hit in zip(self.names, found["at_min"]) if hit],
                "at_max": [n for n, hit in zip(self.names, found["at_max"]) if hit],
                "best_measured_within": best,
                **({} if share is None else self._objective_answer(share, predictors, found["weights"], best))}

    def _top_candidates(self, rng: np.random.Generator) -> list[dict]:
        from climb_ray.samplers import RegMixSampler
        from climb_ray.search import unique_rows

        candidates = unique_rows(RegMixSampler(self.prior).candidates(TOP_CANDIDATES, rng))
        scores = self.predict(candidates)
        top = np.argsort(-scores, kind="stable")[:TOP_PREDICTED]
        return [{"weights": self.as_dict(candidates[i]), "predicted": float(scores[i])} for i in top]


def _clusters(names: list[str], meta: dict, report: dict) -> list[dict]:
    by_name = {f"sc{s['id']:02d}": s for s in report.get("super_clusters", [])}
    total = sum(meta["tokens"].values()) or 1
    out = []
    for name in names:
        if name not in meta["tokens"]:
            raise ValueError(f"the predictor's cluster {name} is not in {TOKENS_META} ({', '.join(meta['tokens'])})")
        s = by_name.get(name, {})
        out.append({"name": name, "label": s.get("name", name), "documents": int(meta["documents"].get(name, 0)),
                    "tokens": int(meta["tokens"][name]), "token_share": meta["tokens"][name] / total,
                    "top_terms": s.get("top_terms", []), "examples": s.get("examples", []),
                    "mean_quality": s.get("mean_quality"), "map_xy": s.get("map_xy")})
    return out


def _measured(run, model: Predictor) -> list[dict]:
    import io

    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(run.read_bytes(TRIALS))).to_pylist()
    groups: dict[tuple, list[dict]] = {}  # a mixture measured several times (repeats, new proxy seeds) is one entry
    for r in rows:
        if r.get("status") == "done" and _finite(r.get("score")) is not None:
            groups.setdefault(tuple(round(float(r.get(f"w_{n}", 0.0)), 9) for n in model.names), []).append(r)
    out = [{"weights": {n: round(w, 6) for n, w in zip(model.names, key)},
            "score": float(np.mean([r["score"] for r in rs])), "measurements": len(rs),
            "iteration": int(rs[0].get("iteration", 0)), "trial_id": rs[0].get("trial_id", ""),
            "components": _components(rs)} for key, rs in groups.items()]
    return sorted(out, key=lambda m: -m["score"])


def _components(rows: list[dict]) -> dict:
    """Each target's mean score over a mixture's measurements (objective.COLUMN columns with a finite
    value in every one)."""
    names = [k for k in rows[0] if k.startswith(COLUMN)]
    return {k[len(COLUMN):]: float(np.mean([r[k] for r in rows])) for k in names
            if all(_finite(r.get(k)) is not None for r in rows)}


def _predictor_settings(settings: dict):
    """The run's predictor settings (its config.yaml, read), the defaults where it has none or they do not read."""
    from climb_ray.config import ConfigError, PredictorConfig
    from climb_ray.config_io import from_dict

    try:
        return from_dict(PredictorConfig, settings.get("predictor") or {}, "predictor.")
    except ConfigError:
        return PredictorConfig()


def _modified(run, rel: str) -> str | None:
    try:
        stamp = run.fs.modified(run.path(rel))
    except Exception:  # not every filesystem reports times
        return None
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
