"""The CLIMB search as ask/tell, with no Ray inside; and the baselines with the same interface.

One iteration (the paper's term; Tune runs each as a batch of trials) per entry of `schedule`
(paper: 64, 32, 16). Iteration 0 comes from the sampler (RegMix's Dirichlet sampler, or a pool's rows). After each iteration
the LightGBM predictor (an ensemble, see predictor.py) is refitted on every distinct mixture
measured so far (repeats averaged), and the next M mixtures are chosen from candidates: the
sampler's, plus `local_fraction` of them drawn around the best measured mixtures.

Acquisition `ucb` (default): the candidates ranked by predicted mean + exploration x the
ensemble's spread, taken greedily one per distinct prediction (two candidates with the same mean
and spread sit in the same cell of every member's trees: the greedy top M would otherwise be
near-duplicates in continuous space); the last iteration exploits (exploration 0): it confirms
the top predicted candidates by measuring them. Acquisition `paper`: M at random from the top
max(M**2, top_pool_min) predicted. A degenerate predictor (see predictor.py) never proposes
alone: the iteration is then drawn from the sampler, as iteration 0 is.

Noise: with answer `confirmed`, iteration 1 re-measures the best mixture once with a new proxy
seed (Trial.repeat); if the two scores differ, each later iteration spends `remeasure_fraction`
of its trials re-measuring the mixtures with the best upper estimate. Noise variance = pooled
variance of the repeats.

Answers: `confirmed` (default): among the measured mixtures, the best estimate, where a mixture's
estimate is its measured mean shrunk towards the predictor's out-of-fold prediction, weighted by
the measurement noise (n / noise variance) against the predictor's error variance; with no noise
it is the measured mean, so the answer is never worse than the best measured mixture, and the
predictor earns its say by the mixtures it had measured. `best` (the paper): the best predicted
candidate; `topk_mean` (RegMix): the mean of the top k; `best_seen`: the best measured mean.
Interval: the estimate +- 1.96 x its standard error (noise unknown without a repeat: none).

Scores are higher-is-better. A failed trial (error, NaN, no score) is recorded and counts as done,
so an iteration never waits for it; it is left out of every fit.

Methods: `climb` (the above), `random` (the whole budget from the sampler, answer = best seen),
`regmix` (the whole budget from the sampler in one iteration, LightGBM, answer = mean of the top-k
predicted candidates), `optuna` (trials come from outside, answer = best seen).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from climb_ray.config import PredictorConfig, SearchConfig
from climb_ray.predictor import Predictor
from climb_ray.samplers import fresh_mask, is_new

METHODS = ("climb", "random", "regmix", "optuna")
Z95 = 1.96


def unique_rows(x: np.ndarray) -> np.ndarray:
    """Each distinct row once, in the order of first appearance (ties in prediction keep that order)."""
    _, first = np.unique(x, axis=0, return_index=True)
    return x[np.sort(first)]


class SearchFailed(RuntimeError):
    """No trial of the search produced a score."""


@dataclass
class Trial:
    weights: np.ndarray
    iteration: int
    score: float = float("nan")
    status: str = "pending"  # pending, done or failed
    asked: bool = False  # handed out by ask()
    repeat: int = 0  # 0: first measurement of its mixture; n: the n-th re-measurement (proxy seed + n)
    components: dict | None = None  # each target's score (objective.py), when the trial reported them


@dataclass
class Measured:
    """One distinct measured mixture: its weights and every score measured for it."""

    weights: np.ndarray
    scores: np.ndarray
    iteration: int  # of its first measurement

    @property
    def mean(self) -> float:
        return float(self.scores.mean())


@dataclass
class ClimbSearch:
    sampler: object  # RegMixSampler or PoolSampler
    names: list[str]
    search: SearchConfig
    predictor_cfg: PredictorConfig
    seed: int = 0
    method: str = "climb"
    trials: list[Trial] = field(default_factory=list)
    iteration: int = -1
    fits: list[dict] = field(default_factory=list)  # predictor quality after each iteration
    predictor: Predictor | None = None
    log: object = None  # where notices go (a degenerate fit); None: standard output, the search log on Ray

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"search method {self.method!r} is not one of {', '.join(METHODS)}")
        self.rng = np.random.default_rng(self.seed)
        self.schedule = [sum(self.search.schedule)] if self.method != "climb" else list(self.search.schedule)

    # -- ask / tell -----------------------------------------------------------------------------------
    def ask(self, n: int) -> list[tuple[int, np.ndarray]]:
        """Up to n (trial index, weights) of the current iteration not handed out yet; [] while the
        iteration still has trials running, or when the search is finished."""
        if self.iteration < 0 or (self._iteration_done() and not self.finished):
            self._next_iteration()
        out = []
        for index, trial in enumerate(self.trials):
            if trial.status == "pending" and not trial.asked and len(out) < n:
                trial.asked = True
                out.append((index, trial.weights))
        return out

    def tell(self, index: int, score: float | None, components: dict | None = None) -> None:
        """The result of trial `index`: its score, or None / NaN when it failed; and each target's score."""
        trial = self.trials[index]
        ok = score is not None and np.isfinite(score)
        trial.score, trial.status = (float(score), "done") if ok else (float("nan"), "failed")
        trial.components = {str(k): float(v) for k, v in components.items()} if ok and components else None

    @property
    def finished(self) -> bool:
        return self.iteration == len(self.schedule) - 1 and self._iteration_done()

    # -- what was measured ----------------------------------------------------------------------------
    def measured(self) -> list[Measured]:
        """Each distinct mixture with a score, in the order of its first measurement."""
        groups: dict[bytes, list[Trial]] = {}
        for t in self.trials:
            if t.status == "done":
                groups.setdefault(np.round(t.weights, 9).tobytes(), []).append(t)
        return [Measured(ts[0].weights, np.array([t.score for t in ts]), ts[0].iteration) for ts in groups.values()]

    def noise_variance(self, groups: list[Measured] | None = None) -> float | None:
        """Pooled variance of repeated measurements of one mixture; None when nothing was repeated."""
        groups = self.measured() if groups is None else groups
        repeated = [g.scores for g in groups if len(g.scores) > 1]
        if not repeated:
            return None
        return float(sum(((s - s.mean()) ** 2).sum() for s in repeated) / sum(len(s) - 1 for s in repeated))

    def estimates(self) -> tuple[list[Measured], np.ndarray, np.ndarray]:
        """(groups, estimate, standard error of the estimate; NaN where the noise is unknown) of each
        measured mixture: its mean shrunk towards the predictor's out-of-fold prediction by the noise."""
        groups = self.measured()
        mean = np.array([g.mean for g in groups])
        n = np.array([len(g.scores) for g in groups], dtype=np.float64)
        s2 = self.noise_variance(groups)
        if s2 is None:
            return groups, mean, np.full(len(groups), np.nan)
        if s2 <= 0:
            return groups, mean, np.zeros(len(groups))
        p = self.predictor
        oof = p.oof if p is not None and not p.degenerate and p.oof is not None else None
        if oof is None or len(oof) != len(groups) or not np.isfinite(oof).all():
            return groups, mean, np.sqrt(s2 / n)
        v = max(float(np.var(mean - oof)) - float(np.mean(s2 / n)), 0.05 * s2)  # the predictor's own error
        precision = n / s2 + 1 / v
        return groups, (mean * n / s2 + oof / v) / precision, np.sqrt(1 / precision)

    # -- iterations ----------------------------------------------------------------------------------
    def _iteration_done(self) -> bool:
        return all(t.status != "pending" for t in self.trials if t.iteration == self.iteration)

    def _evaluated(self) -> np.ndarray:
        return np.array([t.weights for t in self.trials]).reshape(-1, len(self.names))

    def _next_iteration(self) -> None:
        self.iteration += 1
        m = self.schedule[self.iteration]
        if self.iteration == 0:
            chosen = [(w, 0) for w in self.sampler.sample(m, self.rng, exclude=None)]
        else:
            chosen = self._propose(m)
        self.trials.extend(Trial(np.asarray(w, dtype=np.float64), self.iteration, repeat=r) for w, r in chosen)

    def refit(self) -> Predictor | None:
        groups = self.measured()
        if len(groups) < 2:
            return None
        x = np.array([g.weights for g in groups])
        y = np.array([g.mean for g in groups])
        self.predictor = Predictor.fit(x, y, self.predictor_cfg, names=self.names, seed=self.seed + len(groups))
        through = max(t.iteration for t in self.trials if t.status == "done")  # the results it was fitted on
        self.fits.append({"iteration": self.iteration, "through": through, **self.predictor.quality})
        if self.predictor.degenerate:
            (self.log or _print)(f"search: the predictor fitted on iterations 0-{through} is degenerate "
                     f"({self.predictor.quality['degenerate']}); it does not choose alone")
        return self.predictor

    def _propose(self, m: int) -> list[tuple[np.ndarray, int]]:
        predictor = self.refit()
        repeats = self._repeats(m)
        m -= len(repeats)
        seen = self._evaluated()
        if m <= 0:
            return repeats
        if predictor is None or predictor.degenerate:  # nothing to learn from: sample, as iteration 0 does
            return repeats + [(w, 0) for w in self.sampler.sample(m, self.rng, exclude=seen)]
        candidates = self._candidates()
        candidates = candidates[fresh_mask(candidates, seen)]
        if len(candidates) == 0:
            return repeats + [(w, 0) for w in self.sampler.sample(m, self.rng, exclude=seen)]
        if self.search.acquisition == "paper":
            picked = self._paper_pick(predictor, candidates, seen, m)
        else:
            last = self.iteration == len(self.schedule) - 1 and self.search.answer == "confirmed"
            picked = self._ucb_pick(predictor, candidates, m, exploration=0.0 if last else self.search.exploration)
        return repeats + [(w, 0) for w in picked]

    def _candidates(self) -> np.ndarray:
        """The sampler's candidates, and local_fraction of them around the best measured mixtures."""
        n = self.search.n_candidates
        local = int(round(self.search.local_fraction * n))
        parts = [self.sampler.candidates(n - local, self.rng)]
        if local and hasattr(self.sampler, "around"):
            groups, estimate, _ = self.estimates()
            centres = np.array([groups[i].weights for i in np.argsort(-estimate, kind="stable")[:LOCAL_CENTRES]])
            parts.append(self.sampler.around(centres, local, self.rng))
        return unique_rows(np.concatenate([p.reshape(-1, len(self.names)) for p in parts]))

    def _ucb_pick(self, predictor: Predictor, candidates: np.ndarray, m: int, *, exploration: float) -> list:
        mean, spread = predictor.predict_spread(candidates)
        order = np.argsort(-(mean + exploration * spread), kind="stable")
        chosen, cells = [], set()
        for i in order:
            cell = (round(float(mean[i]), 12), round(float(spread[i]), 12))
            if cell not in cells:
                cells.add(cell)
                chosen.append(i)
                if len(chosen) == m:
                    break
        if len(chosen) < m:  # fewer distinct predictions than M (a small fit): the next best, cells repeated
            taken = set(chosen)
            chosen += [i for i in order if i not in taken][: m - len(chosen)]
        return [candidates[i] for i in chosen]

    def _paper_pick(self, predictor: Predictor, candidates: np.ndarray, seen: np.ndarray, m: int) -> list:
        top = np.argsort(-predictor.predict(candidates), kind="stable")[: max(m * m, self.search.top_pool_min)]
        picked: list[np.ndarray] = []
        for i in self.rng.permutation(top):
            if is_new(candidates[i], np.vstack([seen, *picked]) if picked else seen):
                picked.append(candidates[i])
                if len(picked) == m:
                    break
        return picked

    def _repeats(self, m: int) -> list[tuple[np.ndarray, int]]:
        """Re-measurements for this iteration (answer confirmed): one probe while the noise is
        unknown, none once repeats agree exactly, else remeasure_fraction of the iteration."""
        if self.method != "climb" or self.search.answer != "confirmed" or self.search.remeasure_fraction <= 0:
            return []
        groups, estimate, error = self.estimates()
        if not groups:
            return []
        s2 = self.noise_variance(groups)
        count = 1 if s2 is None else 0 if s2 <= 0 else max(1, int(round(self.search.remeasure_fraction * m)))
        upper = estimate + Z95 * np.nan_to_num(error)
        out = []
        for i in np.argsort(-upper, kind="stable")[: min(count, m - 1 if m > 1 else m)]:
            key = np.round(groups[i].weights, 9).tobytes()  # the next repeat number: failed repeats count too
            out.append((groups[i].weights, sum(np.round(t.weights, 9).tobytes() == key for t in self.trials)))
        return out

    # -- the answer -----------------------------------------------------------------------------------
    def best_seen(self) -> Trial | None:
        """The distinct mixture with the best measured mean, as a Trial (score = that mean)."""
        groups = self.measured()
        if not groups:
            return None
        g = max(groups, key=lambda g: g.mean)
        return Trial(g.weights, g.iteration, g.mean, "done", True)

    def answer(self) -> dict:
        """The final mixture: {weights, predicted, source, measured, measurements, estimate, interval,
        noise_sd, degenerate}; see the module docstring for the rules."""
        best = self.best_seen()
        if best is None:
            raise SearchFailed(f"all {len(self.trials)} proxy trials failed, nothing to answer with; each trial's "
                               "error is in search/tune/climb*/*/error.txt")
        predictor = None if self.method in ("random", "optuna") else self.refit()
        rule = "topk_mean" if self.method == "regmix" else self.search.answer
        if predictor is None or self.method in ("random", "optuna"):
            rule = "best_seen"
        degenerate = predictor.quality["degenerate"] if predictor is not None else ""
        if degenerate and rule in ("best", "topk_mean"):
            rule = "best_seen"  # a degenerate fit never chooses the answer alone
        groups, estimate, error = self.estimates()
        noise = self.noise_variance(groups)
        if rule in ("confirmed", "best_seen"):
            i = int(np.argmax(estimate)) if rule == "confirmed" else int(np.argmax([g.mean for g in groups]))
            g = groups[i]
            sd = error[i] if rule == "confirmed" else (np.sqrt(noise / len(g.scores)) if noise is not None else np.nan)
            value = float(estimate[i]) if rule == "confirmed" else g.mean
            out = {"weights": g.weights, "source": rule, "measured": g.mean, "measurements": len(g.scores),
                   "estimate": value, "interval": _interval(value, sd)}
        else:
            out = self._predicted_answer(predictor, rule)
        predicted = float(predictor.predict(out["weights"][None])[0]) if predictor is not None else out["estimate"]
        return {"predicted": predicted, "noise_sd": None if noise is None else float(np.sqrt(noise)),
                "degenerate": degenerate, **out}

    def _predicted_answer(self, predictor: Predictor, rule: str) -> dict:
        candidates = unique_rows(np.vstack([self.sampler.candidates(self.search.n_candidates, self.rng),
                                            self._evaluated()]))
        order = np.argsort(-predictor.predict(candidates), kind="stable")
        if rule == "topk_mean":
            top = order[: self.search.answer_top_k]
            weights, source = candidates[top].mean(axis=0), f"mean_of_top_{len(top)}"
        else:
            weights, source = candidates[order[0]], "best_predicted"
        value = float(predictor.predict(weights[None])[0])
        mae = predictor.quality.get("mae")
        sd = 1.2533 * mae if mae is not None and np.isfinite(mae) else np.nan  # mean |error| -> sd (normal errors)
        return {"weights": weights, "source": source, "measured": None, "measurements": 0, "estimate": value,
                "interval": _interval(value, sd)}

    # -- state ----------------------------------------------------------------------------------------
    def state(self) -> dict:
        """Everything needed to continue exactly where this search is (JSON-serialisable)."""
        return {"iteration": self.iteration, "fits": self.fits, "rng": self.rng.bit_generator.state,
                "trials": [{"weights": t.weights.tolist(), "iteration": t.iteration, "score": t.score,
                            "status": t.status, "asked": t.asked, "repeat": t.repeat,
                            **({"components": t.components} if t.components else {})} for t in self.trials]}

    def restore(self, state: dict) -> None:
        """A state of state(); one written before 2026-12-02 names iterations `generation`."""
        def it(d: dict):
            return d["iteration"] if "iteration" in d else d["generation"]

        self.iteration = it(state)
        self.fits = [{"iteration": it(f), **{k: v for k, v in f.items() if k not in ("iteration", "generation")}}
                     for f in state["fits"]]
        self.rng.bit_generator.state = state["rng"]
        self.trials = [Trial(np.array(t["weights"]), it(t), t["score"], t["status"], t["asked"],
                             int(t.get("repeat", 0)), t.get("components")) for t in state["trials"]]
        self.predictor = None


def _print(message: str) -> None:
    """The default notice sink: a module function, so a search pickles under Ray."""
    from climb_ray import log

    log.get(__name__).info(message)


LOCAL_CENTRES = 4  # measured mixtures with the best estimates that local candidates are drawn around


def _interval(value: float, sd: float) -> list[float] | None:
    return None if sd is None or not np.isfinite(sd) else [float(value - Z95 * sd), float(value + Z95 * sd)]
