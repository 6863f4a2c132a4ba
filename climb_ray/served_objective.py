"""The served model's answers for other objectives than the run's own: a weight per target
(`/v1/optimize` with weights) and the Pareto front of the targets' predicted scores (`/v1/pareto`),
from a predictor per target fitted on the measured mixtures at first use (objective.py). Also the
errors of a request, which served_model re-exports."""

from __future__ import annotations

import numpy as np

from climb_ray.objective import (FRONT_CANDIDATES, ObjectiveError, fit_components, objective_weights,
                                 predict_components, predicted_front)
from climb_ray.samplers import RegMixSampler


class RequestError(ValueError):
    """A request the model cannot answer; the message names the bad value."""


class NotAnswerable(RequestError):
    """A good request this run cannot answer (no per-target scores recorded, too few measured mixtures to
    fit them): the server answers 409."""


class ServedObjective:
    """Mixed into served_model.ServedModel, whose fields and methods it uses: names, measured (each with
    its `components`), components, predictor_cfg, prior, predictor, weights_of, as_dict; and _fitted,
    _lock (the cache)."""

    def objective(self, weights: dict) -> np.ndarray:
        """{component: weight} as shares summing to 1, in self.components' order."""
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
        """A predictor per component, fitted on the measured mixtures at the first call (seconds);
        NotAnswerable when they cannot be fitted (fewer than 2 measured mixtures)."""
        from lightgbm.basic import LightGBMError

        with self._lock:
            if "predictors" not in self._fitted:
                x = self.weights_of(self.measured)
                y = np.array([[m["components"][n] for n in self.components] for m in self.measured])
                try:
                    self._fitted["predictors"] = fit_components(x, y, self.predictor_cfg, clusters=self.names,
                                                                components=self.components, seed=0)
                except (ValueError, LightGBMError) as err:
                    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                    raise NotAnswerable(f"the targets' predictors cannot be fitted on this run's {len(x)} "
                                        f"measured mixture(s): {first}") from None
            return self._fitted["predictors"]

    def _objective_answer(self, share: np.ndarray, predictors: dict, w: np.ndarray, best: dict | None) -> dict:
        """What /v1/optimize adds for objective weights; its uncertainty is null (the held-out MAE is the
        run objective's) and the best measured mixture's objective_score is its measured value of this one."""
        guess = predict_components(predictors, w[None])[0]
        return {"objective": {n: round(float(v), 6) for n, v in zip(self.components, share)},
                "components": {n: float(v) for n, v in zip(self.components, guess)},
                "degenerate": _degenerate(predictors), "uncertainty": None,
                "best_measured_within": best and {**best, "objective_score": self.measured_objective(best, share)}}

    def measured_objective(self, measured: dict, share: np.ndarray) -> float:
        """A measured mixture's score for the objective `share`: the weighted mean of its components."""
        return float(sum(measured["components"][n] * w for n, w in zip(self.components, share)))

    def pareto(self, seed: int = 0) -> dict:
        """The mixtures on the Pareto front of the components' predicted scores (two or more components),
        best in the first component first, of candidates drawn with `seed` (cached per seed); NotAnswerable
        with fewer components or too few measured mixtures to fit them."""
        if len(self.components) < 2:
            raise NotAnswerable(f"this run's objective has {len(self.components)} recorded component(s) "
                                f"({', '.join(self.components) or 'none'}): a Pareto front needs two target.paths")
        predictors = self.component_predictors()
        with self._lock:
            if ("front", seed) not in self._fitted:
                w, y = predicted_front(predictors, RegMixSampler(self.prior), self.weights_of(self.measured),
                                       seed=seed)
                self._fitted["front", seed] = [{"weights": self.as_dict(a),
                                                "predicted": dict(zip(self.components, map(float, b)))}
                                               for a, b in zip(w, y)]
        return {"components": self.components, "direction": self.predictor.direction,
                "degenerate": _degenerate(predictors),
                "candidates_scored": FRONT_CANDIDATES + len(self.measured), "front": self._fitted["front", seed]}


def _degenerate(predictors: dict) -> dict:
    """Why each component's predictor cannot rank mixtures (null: it can)."""
    return {n: p.quality.get("degenerate") or None for n, p in predictors.items()}
