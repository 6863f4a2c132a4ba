"""The pool benchmark of search methods (`climb-ray bench-search`), on measured runs such as RegMix's.

The pool is the rows of the CSV files (rows whose target or any weight is missing or not finite
dropped; `answer_row` and `best_seen_row` index what is left, in CSV order). A method may evaluate only pool rows and must
answer with a pool row. An evaluation returns the row's measured value plus, with --noise SD,
seeded Gaussian noise: a repeated evaluation of a row draws fresh noise (like a proxy trained with
a new seed) and counts against the budget like any other. Regret is judged on the noiseless value:
the answer's value minus the pool's best (for --mode min; the other way round for max); best-seen
regret is that of the row with the best measured mean among those evaluated (what a user without a
predictor would pick). Means and 95% intervals (1.96 standard errors) over seeds.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from climb_ray.config import PredictorConfig, SearchConfig
from climb_ray.mixture import allocate
from climb_ray.samplers import PoolSampler
from climb_ray.search import METHODS, ClimbSearch


def load_pool(paths: list[str], target: str, weight_columns: list[str] | None = None):
    """(weights (n, k), values (n,), weight column names) from the CSV files."""
    import pandas as pd

    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    if target not in table.columns:
        raise ValueError(f"--target {target!r} is not a column of {', '.join(paths)}")
    names = weight_columns or [c for c in table.columns if c != "index" and not c.startswith(("loss_", "score_"))]
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise ValueError(f"--weight-columns {', '.join(missing)} not in the CSV files")
    weights = table[names].to_numpy(dtype=np.float64)
    values = table[target].to_numpy(dtype=np.float64)
    keep = np.isfinite(values) & np.isfinite(weights).all(axis=1)
    return weights[keep], values[keep], names


def climb_schedule(budget: int, ratio=(4, 2, 1)) -> list[int]:
    """The budget split in the proportions of `ratio` (search.schedule; the paper's 64:32:16 is 4:2:1)."""
    counts = allocate(np.array(ratio, dtype=float) / sum(ratio), budget)
    return [int(c) for c in counts if c > 0]


def nearest(rows: np.ndarray, w: np.ndarray) -> int:
    return int(np.argmin(np.abs(rows - w).sum(axis=1)))


class Evaluator:
    """Evaluations of pool rows: the row's score plus seeded Gaussian noise (fresh at every call),
    with the measurements kept per row."""

    def __init__(self, scores: np.ndarray, noise: float, seed: int):
        self.scores, self.noise = scores, noise
        self.rng = np.random.default_rng([seed, 7_777])  # not the search's own stream
        self.measured: dict[int, list[float]] = {}

    def __call__(self, row: int) -> float:
        value = float(self.scores[row] + (self.rng.normal(0.0, self.noise) if self.noise > 0 else 0.0))
        self.measured.setdefault(row, []).append(value)
        return value

    def best_seen(self) -> int:
        return max(self.measured, key=lambda r: np.mean(self.measured[r]))


def run_one(method: str, weights: np.ndarray, scores: np.ndarray, budget: int, seed: int,
            search: SearchConfig, predictor: PredictorConfig, noise: float = 0.0) -> tuple[int, int]:
    """(answer row, best-seen row) of one method run; `scores` are higher-is-better."""
    evaluate = Evaluator(scores, noise, seed)
    if method == "optuna":
        return _run_optuna(weights, evaluate, budget, seed)
    schedule = climb_schedule(budget, search.schedule) if method == "climb" else [budget]
    cfg = dataclasses.replace(search, schedule=schedule)
    s = ClimbSearch(PoolSampler(weights), [f"w{i}" for i in range(weights.shape[1])], cfg, predictor,
                    seed=seed, method=method, log=lambda message: None)
    while not s.finished:
        batch = s.ask(budget)
        if not batch:
            break  # the pool ran out of rows
        for index, w in batch:
            s.tell(index, evaluate(nearest(weights, w)))
    return nearest(weights, s.answer()["weights"]), evaluate.best_seen()


def _run_optuna(weights: np.ndarray, evaluate: Evaluator, budget: int, seed: int) -> tuple[int, int]:
    """Optuna's TPE over k numbers in [0, 1] normalised onto the simplex; each suggestion evaluates the
    nearest pool row not evaluated yet. Answer: the best row seen."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    k, used = weights.shape[1], np.zeros(len(weights), dtype=bool)
    for _ in range(min(budget, len(weights))):
        trial = study.ask()
        x = np.array([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(k)]) + 1e-12
        distance = np.abs(weights - x / x.sum()).sum(axis=1)
        distance[used] = np.inf
        row = int(np.argmin(distance))
        used[row] = True
        study.tell(trial, evaluate(row))
    best = evaluate.best_seen()
    return best, best


def summarise(regrets: list[float]) -> tuple[float, float]:
    a = np.asarray(regrets, dtype=float)
    return float(a.mean()), float(1.96 * a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0


def benchmark(paths: list[str], target: str, *, mode: str, budgets: list[int], seeds: int,
              methods: list[str], weight_columns: list[str] | None = None,
              search: SearchConfig | None = None, predictor: PredictorConfig | None = None,
              noise: float = 0.0, progress=None) -> dict:
    if mode not in ("min", "max"):
        raise ValueError(f"--mode {mode!r}: must be min or max")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"--noise {noise!r}: must be a finite standard deviation >= 0")
    bad = [s for s in methods if s not in METHODS]
    if bad:
        raise ValueError(f"--methods {', '.join(bad)}: known are {', '.join(METHODS)}")
    weights, values, _ = load_pool(paths, target, weight_columns)
    too_big = [b for b in budgets if not 2 <= b <= len(weights)]
    if too_big:
        raise ValueError(f"--budgets {too_big}: each must be between 2 and the pool size {len(weights)}")
    scores = -values if mode == "min" else values
    best = float(values.min() if mode == "min" else values.max())
    search, predictor = search or SearchConfig(), predictor or PredictorConfig()
    results: dict = {}
    for method in methods:
        results[method] = {}
        for budget in budgets:
            per_seed = []
            for seed in range(seeds):
                answer, seen = run_one(method, weights, scores, budget, seed, search, predictor, noise)
                per_seed.append({"seed": seed, "regret": _regret(values[answer], best, mode),
                                 "best_seen_regret": _regret(values[seen], best, mode),
                                 "answer_row": answer, "best_seen_row": seen})
            mean, ci = summarise([r["regret"] for r in per_seed])
            seen_mean, seen_ci = summarise([r["best_seen_regret"] for r in per_seed])
            results[method][budget] = {"regret_mean": mean, "regret_ci95": ci, "best_seen_regret_mean": seen_mean,
                                         "best_seen_regret_ci95": seen_ci, "per_seed": per_seed}
            if progress:
                progress(method, budget, results[method][budget])
    return {"target": target, "mode": mode, "noise": noise, "pool_best": best, "pool_size": int(len(weights)),
            "results": results}


def _regret(value: float, best: float, mode: str) -> float:
    return float(value - best) if mode == "min" else float(best - value)


def format_table(report: dict) -> str:
    lines = [f"target {report['target']} ({report['mode']}), pool of {report['pool_size']} rows, best "
             f"{report['pool_best']:.4f}, noise sd {report.get('noise', 0.0):g}; regret of the answer (best seen), mean +- 95% interval over seeds",
             f"{'method':<10}" + "".join(f"{'budget ' + str(b):>34}" for b in next(iter(report['results'].values())))]
    for method, by_budget in report["results"].items():
        cells = [f"{r['regret_mean']:.4f} +- {r['regret_ci95']:.4f} ({r['best_seen_regret_mean']:.4f})"
                 for r in by_budget.values()]
        lines.append(f"{method:<10}" + "".join(f"{c:>34}" for c in cells))
    return "\n".join(lines)


def write_json(report: dict, path: str) -> None:
    with open(path, "w") as out:
        json.dump({**report, "results": {s: {str(b): r for b, r in v.items()} for s, v in report["results"].items()}},
                  out, indent=1)
