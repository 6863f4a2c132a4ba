"""The comparison table of `climb-ray compare`: each method's mixture scored by evaluation proxies
over several seeds (mean and a 95% t-interval), beside the proxy compute the method spent."""

from __future__ import annotations

import math

import numpy as np


def interval(scores: list[float]) -> dict:
    """Mean, 95% t-interval half-width (0 for one score), standard deviation, min and max."""
    from scipy import stats

    x = np.asarray(scores, dtype=np.float64)
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    half = float(stats.t.ppf(0.975, len(x) - 1) * sd / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "ci95": half, "sd": sd, "min": float(x.min()), "max": float(x.max()),
            "n": int(len(x))}


def rows(mixtures: dict[str, dict], results: dict[str, list[float]]) -> list[dict]:
    """One row per mixture, best mean score first (scores are higher-is-better)."""
    out = []
    for label, mixture in mixtures.items():
        stats = interval(results[label])
        top = sorted(mixture["weights"].items(), key=lambda kv: -kv[1])[:3]
        out.append({"method": label, **stats, "scores": results[label], "weights": mixture["weights"],
                    "answer": mixture.get("answer", mixture["weights"]), "capped": mixture.get("capped", False),
                    "top": ", ".join(f"{n} {w:.2f}" for n, w in top), **mixture.get("compute", {})})
    return sorted(out, key=lambda r: -r["mean"])


def format_table(table: list[dict], *, seeds: int, proxy: str) -> str:
    """A Markdown table: the score with its interval, and what each method spent on proxies."""
    lines = [f"Target score of one evaluation proxy per mixture ({proxy}), mean and 95% t-interval over "
             f"{seeds} seeds; higher is better.", "",
             "| method | score | 95% interval | proxy runs | proxy tokens | proxy seconds | largest weights |",
             "|---|---|---|---|---|---|---|"]
    for r in table:
        runs = r.get("proxy_runs")
        spent = (f"| {runs} | {r['proxy_tokens'] / 1e6:.2f}M | {r['proxy_seconds']:.0f} " if runs is not None
                 else "| 0 | 0 | 0 ")
        lines.append(f"| {r['method']} | {r['mean']:.4f} | [{r['mean'] - r['ci95']:.4f}, {r['mean'] + r['ci95']:.4f}] "
                     f"{spent}| {r['top']} |")
    return "\n".join(lines) + "\n"
