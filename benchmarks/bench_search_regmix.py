"""Mixture search on RegMix's measured runs: CLIMB's answer vs random search, RegMix and Optuna TPE,
side by side on the same seeds, over all 8 targets; prints each method's mean regret and its
ratio to random search's (lower is better).

The pool is RegMix's 768 measured 1M-parameter runs (train + test CSV, ../shared/benchmarks/regmix,
MIT); see climb_ray/bench_search.py for the rules (answers are pool rows; --noise adds seeded
Gaussian noise to each evaluation, repeats included; regret on the noiseless value).
--scale accuracy replaces each target's losses by an accuracy-like score in [0.25, 0.70]
(0.70 at the lowest loss, linear, --mode max): the same search must do as well on it.

    .venv/bin/python benchmarks/bench_search_regmix.py --budgets 56 --seeds 50 --noise 0
    .venv/bin/python benchmarks/bench_search_regmix.py --budgets 28,56,112 --seeds 20 --noise 0.02
    .venv/bin/python benchmarks/bench_search_regmix.py --budgets 56 --seeds 20 --scale accuracy
    .venv/bin/python benchmarks/bench_search_regmix.py --config paper ...   # the paper's settings for CLIMB
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REGMIX = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "regmix"
TARGETS = ["loss_freelaw", "loss_pubmed_central", "loss_dm_mathematics", "loss_gutenberg_pg_19", "loss_ubuntu_irc",
           "loss_hackernews", "loss_pubmed_abstracts", "loss_uspto_backgrounds"]


def accuracy_pool(paths: list[Path], folder: str) -> str:
    """One CSV with every loss_<t> column replaced by score_<t> = 0.25 + 0.45 (max - loss) / (max - min)."""
    import pandas as pd

    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    for target in TARGETS:
        loss = table.pop(target)
        table[target.replace("loss_", "score_")] = 0.25 + 0.45 * (loss.max() - loss) / (loss.max() - loss.min())
    out = f"{folder}/regmix_accuracy.csv"
    table.to_csv(out, index=False)
    return out


def main() -> int:
    from types import SimpleNamespace

    from climb_ray.bench_search import benchmark
    from climb_ray.cli import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="56")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--noise", type=float, default=0.0, help="noise sd, in loss units (or accuracy units)")
    parser.add_argument("--methods", default="climb,random,regmix,optuna")
    parser.add_argument("--scale", choices=["loss", "accuracy"], default="loss")
    parser.add_argument("--config", default=None, help="a preset or YAML whose search.* / predictor.* CLIMB uses")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--json", default=None, help="write every result here")
    args = parser.parse_args()
    cfg = load(SimpleNamespace(config=args.config, overrides=[]))  # a preset name (paper) or a YAML path
    budgets = [int(b) for b in args.budgets.split(",")]
    methods = args.methods.split(",")
    paths = [REGMIX / "runs_1m_train.csv", REGMIX / "runs_1m_test.csv"]
    start, reports = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [accuracy_pool(paths, tmp)] if args.scale == "accuracy" else [str(p) for p in paths]
        for target in args.targets.split(","):
            column = target.replace("loss_", "score_") if args.scale == "accuracy" else target
            report = benchmark(runs, column, mode="max" if args.scale == "accuracy" else "min", budgets=budgets,
                               seeds=args.seeds, methods=methods, search=cfg.search, predictor=cfg.predictor,
                               noise=args.noise)
            reports.append(report)
            print(target, "  ".join(f"{s}@{b} {report['results'][s][b]['regret_mean']:.4f}"
                                    for b in budgets for s in methods), flush=True)
    print(f"\nmean regret over {len(reports)} targets, {args.seeds} seeds, noise {args.noise:g}, {args.scale} scale "
          f"({time.perf_counter() - start:.0f} s); ratio = method / random search")
    for budget in budgets:
        means = {s: float(np.mean([r["results"][s][budget]["regret_mean"] for r in reports])) for s in methods}
        worse = {s: sum(_worse_than_random(r, s, budget) for r in reports) for s in methods}
        line = "  ".join(f"{s} {m:.4f}" + (f" ({m / means['random']:.2f}x, worse on {worse[s]})" if "random" in means
                                           and means["random"] > 0 else "") for s, m in means.items())
        print(f"budget {budget:>4}: {line}")
    if args.json:
        Path(args.json).write_text(json.dumps([{**r, "results": {s: {str(b): v for b, v in by.items()}
                                                                for s, by in r["results"].items()}} for r in reports]))
    return 0


def _worse_than_random(report: dict, method: str, budget: int) -> bool:
    """The method's mean regret above random search's beyond both 95% intervals."""
    if "random" not in report["results"]:
        return False
    a, r = report["results"][method][budget], report["results"]["random"][budget]
    return a["regret_mean"] - a["regret_ci95"] > r["regret_mean"] + r["regret_ci95"]


if __name__ == "__main__":
    raise SystemExit(main())
