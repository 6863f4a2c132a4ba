"""The served model's answers for other objectives than the run's own: a weight per target
(`/v1/optimize` with weights) and the Pareto front of the targets' predicted scores (`/v1/pareto`),
from a predictor per target fitted on the measured mixtures at first use (objective.py)."""

from __future__ import annotations

import numpy as np

from climb_ray.objective import predict_components


class ServedObjective:
    """Mixed into served_model.ServedModel, whose fields it reads: names, measured (each with its
    `components`), components, predictor_cfg, prior, predictor; and _fitted, _lock (the cache)."""

    def objective(self, weights: dict) -> np.ndarray:
        """{component: weight} as shares summing to 1, in self.components' order."""
        from climb_ray.objective import ObjectiveError, objective_weights
        from climb_ray.served_model import NotAnswerable, RequestError

        if not isinstance(weights, dict):
            raise RequestError(f"weights must be an object {{component: weight}}, got {type(weights).__name__}")
        if not self.components:
            raise NotAnswerable("weights: this run's trials recorded no per-target scores (proxy.command "
                                "or a search made before they were recorded): only its own objective is served")
        try:
            share = objective_weights(weights, self.components)
        except ObjectiveError as err:
            raise RequestError(str(err)) from None
        return share / share.sum()

    def component_predictors(self) -> dict:
        """A predictor per component, fitted on the measured mixtures at the first call (seconds)."""
        from climb_ray.objective import fit_components

        with self._lock:
            if "predictors" not in self._fitted:
                x = np.array([[m["weights"][n] for n in self.names] for m in self.measured])
                y = np.array([[m["components"][n] for n in self.components] for m in self.measured])
                self._fitted["predictors"] = fit_components(x, y, self.predictor_cfg, clusters=self.names,
                                                            components=self.components, seed=0)
            return self._fitted["predictors"]

    def _objective_answer(self, share: np.ndarray, predictors: dict, w: np.ndarray) -> dict:
        guess = predict_components(predictors, w[None])[0]
        return {"objective": {n: round(float(v), 6) for n, v in zip(self.components, share)},
                "components": {n: float(v) for n, v in zip(self.components, guess)},
                "degenerate": _degenerate(predictors)}

    def pareto(self, seed: int = 0) -> dict:
        """The mixtures on the Pareto front of the components' predicted scores (two or more components),
        best in the first component first; NotAnswerable with fewer."""
        from climb_ray.objective import FRONT_CANDIDATES, predicted_front
        from climb_ray.samplers import RegMixSampler
        from climb_ray.served_model import NotAnswerable

        if len(self.components) < 2:
            raise NotAnswerable(f"this run's objective has {len(self.components)} recorded component(s) "
                                f"({', '.join(self.components) or 'none'}): a Pareto front needs two target.paths")
        predictors = self.component_predictors()
        with self._lock:
            if "front" not in self._fitted:
                x = np.array([[m["weights"][n] for n in self.names] for m in self.measured])
                candidates = np.vstack([RegMixSampler(self.prior).candidates(FRONT_CANDIDATES,
                                                                             np.random.default_rng(seed)), x])
                w, y = predicted_front(predictors, candidates)
                self._fitted["front"] = [{"weights": self.as_dict(a),
                                          "predicted": dict(zip(self.components, map(float, b)))} for a, b in zip(w, y)]
        return {"components": self.components, "direction": self.predictor.direction,
                "degenerate": _degenerate(predictors),
                "candidates_scored": FRONT_CANDIDATES + len(self.measured), "front": self._fitted["front"]}


def _degenerate(predictors: dict) -> dict:
    """Why each component's predictor cannot rank mixtures (null: it can)."""
    return {n: p.quality.get("degenerate") or None for n, p in predictors.items()}
