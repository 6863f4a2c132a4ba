"""The comparison table of `climb-ray compare`: each method's answers (one per search seed) scored by
evaluation proxies over several seeds, the mean with a 95% t-interval across search seeds (across
evaluation seeds for one search or a fixed mixture), beside the proxy compute one search spent; and
the same as a chart."""

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


def rows(groups: dict[str, list[dict]], results: dict[str, list[list[float]]]) -> list[dict]:
    """One row per method or reference, best mean score first (scores are higher-is-better).

    groups: each method's answers, one per search seed (a reference: its one mixture); results: each
    answer's evaluation scores. An answer scores the mean of its evaluation proxies. With several
    search seeds the row's mean and interval are across the answers (what a rerun of the method with
    another seed would give), with one across its evaluation proxies; eval_sd is the spread of one
    answer's evaluation proxies (mean over answers). Compute is one search's (mean over search seeds).
    """
    out = []
    for label, answers in groups.items():
        each = [{"search_seed": s, **interval(scores), "scores": scores, "weights": m["weights"],
                 "answer": m.get("answer", m["weights"]), "capped": m.get("capped", False), **m.get("compute", {})}
                for s, (m, scores) in enumerate(zip(answers, results[label]))]
        values = [a["mean"] for a in each] if len(each) > 1 else each[0]["scores"]
        out.append({"method": label, **interval(values), "scores": values,
                    "over": "search seeds" if len(each) > 1 else "evaluation seeds",
                    "searches": len(each) if "compute" in answers[0] else 0,
                    "eval_sd": float(np.mean([a["sd"] for a in each])),
                    "weights": each[0]["weights"], "answer": each[0]["answer"], "capped": any(a["capped"] for a in each),
                    "top": " / ".join(_top(a["weights"], 3 if len(each) == 1 else 2) for a in each),
                    **_mean_compute([m["compute"] for m in answers if "compute" in m]), "search_seeds": each})
    return sorted(out, key=lambda r: -r["mean"])


def _top(weights: dict, n: int) -> str:
    return ", ".join(f"{c} {w:.2f}" for c, w in sorted(weights.items(), key=lambda kv: -kv[1])[:n])


def _mean_compute(computes: list[dict]) -> dict:
    if not computes:
        return {}
    mean = {key: float(np.mean([c[key] for c in computes])) for key in computes[0]}
    return {key: round(v, 1) if key == "proxy_seconds" else int(round(v)) for key, v in mean.items()}


def format_table(table: list[dict], *, seeds: int, proxy: str) -> str:
    """A Markdown table: the score with its interval and spread, and what one search of each method spent."""
    searched = max((r["searches"] for r in table), default=0)
    if searched > 1:
        caption = (f"Target score, higher is better. An answer's score is the mean of {seeds} evaluation proxies "
                   f"({proxy}). Each method searched with {searched} search seeds: score = mean over its "
                   f"answers, 95% t-interval across search seeds; a reference (a fixed mixture): 95% t-interval "
                   "across its evaluation proxies. eval sd: standard deviation of one answer's evaluation "
                   "proxies (mean over answers). Proxy runs, tokens and seconds: one search (mean over search seeds).")
    else:
        caption = (f"Target score of one evaluation proxy per mixture ({proxy}), mean and 95% t-interval over "
                   f"{seeds} seeds; higher is better. eval sd: their standard deviation.")
    lines = [caption, "",
             "| method | score | 95% interval | searches | eval sd | proxy runs | proxy tokens | proxy seconds "
             "| largest weights |", "|---|---|---|---|---|---|---|---|---|"]
    for r in table:
        runs = r.get("proxy_runs")
        spent = (f"| {runs} | {r['proxy_tokens'] / 1e6:.2f}M | {r['proxy_seconds']:.0f} " if runs is not None
                 else "| 0 | 0 | 0 ")
        lines.append(f"| {r['method']} | {r['mean']:.4f} | [{r['mean'] - r['ci95']:.4f}, {r['mean'] + r['ci95']:.4f}] "
                     f"| {r['searches']} | {r['eval_sd']:.4f} {spent}| {r['top']} |")
    return "\n".join(lines) + "\n"


def table_png(table: list[dict]) -> bytes:
    """The table as a chart: each method's mean score with its 95% interval, best at the top, and the
    score of each of its answers (one dot per search seed; a reference: per evaluation proxy)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.5 * max(len(table), 1)))
    for i, r in enumerate(table):
        searched = r["searches"] > 0
        color = "#4c72b0" if searched else "#8c8c8c"
        ax.errorbar(r["mean"], i, xerr=r["ci95"], fmt="o", color=color, capsize=4, ms=7, zorder=3)
        ax.scatter(r["scores"], [i] * len(r["scores"]), s=14, color=color, alpha=0.45, zorder=2)
    ax.set_yticks(range(len(table)), [r["method"] for r in table])
    ax.invert_yaxis()
    over = next((r["over"] for r in table if r["searches"] > 1), "evaluation seeds")
    ax.set(xlabel="target score (higher is better)",
           title=f"mean and 95% interval; dots: each answer ({over}); grey: fixed references")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
