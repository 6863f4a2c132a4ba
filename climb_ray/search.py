"""The CLIMB search as ask/tell, with no Ray inside; and the baselines with the same interface.

One generation per entry of `schedule` (paper: 64, 32, 16). Generation 0 comes from the sampler
(RegMix's Dirichlet sampler, or a pool's rows). After each generation the LightGBM predictor is
refitted on every result so far; the next M mixtures are drawn at random from the top
max(M**2, top_pool_min) of `n_candidates` scored candidates, never one evaluated before. The
answer is the best predicted candidate (or the mean of the top k, as RegMix answers; or, with
answer=best_seen, the best mixture measured: better on the RegMix pool benchmark, see README).

Scores are higher-is-better. A failed trial (error, NaN, no score) is recorded and counts as
done, so a generation never waits for it; it is left out of every fit.

Strategies: `climb` (the above), `random` (the whole budget from the sampler, answer = best
seen), `regmix` (the whole budget from the sampler in one generation, LightGBM, answer = mean of
the top-k predicted candidates).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from climb_ray.config import PredictorConfig, SearchConfig
from climb_ray.predictor import Predictor
from climb_ray.samplers import fresh_mask, is_new

STRATEGIES = ("climb", "random", "regmix", "optuna")  # optuna: trials come from outside, answer = best seen


def unique_rows(x: np.ndarray) -> np.ndarray:
    """Each distinct row once, in the order of first appearance (ties in prediction keep that order)."""
    _, first = np.unique(x, axis=0, return_index=True)
    return x[np.sort(first)]


class SearchFailed(RuntimeError):
    """No trial of the search produced a score."""


@dataclass
class Trial:
    weights: np.ndarray
    generation: int
    score: float = float("nan")
    status: str = "pending"  # pending, done or failed
    asked: bool = False  # handed out by ask()


@dataclass
class ClimbSearch:
    sampler: object  # RegMixSampler or PoolSampler
    names: list[str]
    search: SearchConfig
    predictor_cfg: PredictorConfig
    seed: int = 0
    strategy: str = "climb"
    trials: list[Trial] = field(default_factory=list)
    generation: int = -1
    fits: list[dict] = field(default_factory=list)  # predictor quality after each generation
    predictor: Predictor | None = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"search strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        self.rng = np.random.default_rng(self.seed)
        self.schedule = [sum(self.search.schedule)] if self.strategy != "climb" else list(self.search.schedule)

    # -- ask / tell -----------------------------------------------------------------------------------
    def ask(self, n: int) -> list[tuple[int, np.ndarray]]:
        """Up to n (trial index, weights) of the current generation not handed out yet; [] while the
        generation still has trials running, or when the search is finished."""
        if self.generation < 0 or (self._generation_done() and not self.finished):
            self._next_generation()
        out = []
        for index, trial in enumerate(self.trials):
            if trial.status == "pending" and not trial.asked and len(out) < n:
                trial.asked = True
                out.append((index, trial.weights))
        return out

    def tell(self, index: int, score: float | None) -> None:
        """The result of trial `index`: its score, or None / NaN when it failed."""
        trial = self.trials[index]
        ok = score is not None and np.isfinite(score)
        trial.score, trial.status = (float(score), "done") if ok else (float("nan"), "failed")

    @property
    def finished(self) -> bool:
        return self.generation == len(self.schedule) - 1 and self._generation_done()

    # -- generations ----------------------------------------------------------------------------------
    def _generation_done(self) -> bool:
        return all(t.status != "pending" for t in self.trials if t.generation == self.generation)

    def _evaluated(self) -> np.ndarray:
        return np.array([t.weights for t in self.trials]).reshape(-1, len(self.names))

    def _next_generation(self) -> None:
        self.generation += 1
        m = self.schedule[self.generation]
        if self.generation == 0:
            chosen = self.sampler.sample(m, self.rng, exclude=None)
        else:
            chosen = self._propose(m)
        self.trials.extend(Trial(np.asarray(w, dtype=np.float64), self.generation) for w in chosen)

    def refit(self) -> Predictor | None:
        done = [t for t in self.trials if t.status == "done"]
        if len(done) < 2:
            return None
        x = np.array([t.weights for t in done])
        y = np.array([t.score for t in done])
        self.predictor = Predictor.fit(x, y, self.predictor_cfg, names=self.names, seed=self.seed + len(done))
        self.fits.append({"generation": self.generation, **self.predictor.quality})
        return self.predictor

    def _propose(self, m: int) -> np.ndarray:
        predictor = self.refit()
        candidates = unique_rows(self.sampler.candidates(self.search.n_candidates, self.rng))
        seen = self._evaluated()
        candidates = candidates[fresh_mask(candidates, seen)]
        if predictor is None or len(candidates) == 0:  # nothing to learn from yet: sample
            return self.sampler.sample(m, self.rng, exclude=seen)
        top = np.argsort(-predictor.predict(candidates), kind="stable")[: max(m * m, self.search.top_pool_min)]
        picked: list[np.ndarray] = []
        for i in self.rng.permutation(top):
            if is_new(candidates[i], np.vstack([seen, *picked]) if picked else seen):
                picked.append(candidates[i])
                if len(picked) == m:
                    break
        return np.array(picked).reshape(-1, len(self.names))

    # -- the answer -----------------------------------------------------------------------------------
    def best_seen(self) -> Trial | None:
        done = [t for t in self.trials if t.status == "done"]
        return max(done, key=lambda t: t.score) if done else None

    def answer(self) -> dict:
        """The final mixture: best seen (random), else from the predictor refitted on everything."""
        best = self.best_seen()
        if best is None:
            raise SearchFailed(f"all {len(self.trials)} proxy trials failed, nothing to answer with; each trial's "
                               "error is in search/tune/climb/*/error.txt")
        if self.strategy in ("random", "optuna") or self.refit() is None:
            return {"weights": best.weights, "predicted": best.score, "source": "best_seen"}
        if self.search.answer == "best_seen" and self.strategy == "climb":  # RegMix keeps its own rule
            return {"weights": best.weights, "predicted": float(self.predictor.predict(best.weights[None])[0]),
                    "source": "best_seen"}
        candidates = unique_rows(np.vstack([self.sampler.candidates(self.search.n_candidates, self.rng),
                                            self._evaluated()]))
        predicted = self.predictor.predict(candidates)
        order = np.argsort(-predicted, kind="stable")
        if self.strategy == "regmix" or self.search.answer == "topk_mean":
            top = order[: self.search.answer_top_k]
            weights = candidates[top].mean(axis=0)
            return {"weights": weights, "predicted": float(self.predictor.predict(weights[None])[0]),
                    "source": f"mean_of_top_{len(top)}"}
        return {"weights": candidates[order[0]], "predicted": float(predicted[order[0]]), "source": "best_predicted"}

    # -- state ----------------------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to continue exactly where this search is (JSON-serialisable)."""
        return {"generation": self.generation, "fits": self.fits, "rng": self.rng.bit_generator.state,
                "trials": [{"weights": t.weights.tolist(), "generation": t.generation, "score": t.score,
                            "status": t.status, "asked": t.asked} for t in self.trials]}

    def restore(self, state: dict) -> None:
        self.generation, self.fits = state["generation"], list(state["fits"])
        self.rng.bit_generator.state = state["rng"]
        self.trials = [Trial(np.array(t["weights"]), t["generation"], t["score"], t["status"], t["asked"])
                       for t in state["trials"]]
        self.predictor = None
