"""What the search reports: best_mixture.json and its PNGs (score by iteration, the predictor's held-out
fit by iteration, predicted vs measured, the final weights)."""

from __future__ import annotations

import io

import numpy as np

from climb_ray.search import ClimbSearch
from climb_ray.served_model import _finite


def best_mixture(search: ClimbSearch, answer: dict, clusters: dict) -> dict:
    terms = {f"sc{s['id']:02d}": s["top_terms"][:8] for s in clusters["super_clusters"]}
    seen = search.best_seen()
    quality = search.predictor.quality if search.predictor is not None else {}
    return {
        "direction": "higher_is_better",
        "method": search.method,
        "answer": answer["source"],
        "weights": {n: round(float(w), 6) for n, w in zip(search.names, answer["weights"])},
        "clusters": [{"name": n, "weight": round(float(w), 6), "top_terms": terms.get(n, [])}
                     for n, w in sorted(zip(search.names, answer["weights"]), key=lambda x: -x[1])],
        "predicted_score": float(answer["predicted"]),
        "estimate": _finite(answer.get("estimate")),  # the score the answer is expected to reach (see interval)
        "interval": answer.get("interval"),  # 95% interval of that estimate; null: no repeat measured the noise
        "measured": _finite(answer.get("measured")),  # mean measured score of the answer (null: never measured)
        "measurements": int(answer.get("measurements", 0)),  # proxies trained on the answer (new seeds each)
        "noise_sd": answer.get("noise_sd"),  # standard deviation of repeated measurements (null: none repeated)
        "predictor": {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in quality.items()},
        "degenerate": answer.get("degenerate") or None,  # why the final predictor cannot rank mixtures, if so
        "uncertainty": "interval: 95% interval of the estimate; predictor.mae: the predictor's held-out mean "
                       "absolute error",
        "best_seen": {"score": float(seen.score), "iteration": seen.iteration,
                      "weights": {n: round(float(w), 6) for n, w in zip(search.names, seen.weights)}},
        "trials": len(search.trials), "failed": sum(t.status == "failed" for t in search.trials),
    }


def report_pngs(search: ClimbSearch, answer: dict) -> dict[str, bytes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [t for t in search.trials if t.status == "done"]
    out = {}
    fig, ax = plt.subplots(figsize=(6, 4))
    gens = np.array([t.iteration for t in done])
    scores = np.array([t.score for t in done])
    ax.scatter(gens + np.random.default_rng(0).uniform(-0.15, 0.15, len(gens)), scores, s=14, alpha=0.7)
    ax.plot(range(search.iteration + 1), [scores[gens <= g].max() if (gens <= g).any() else np.nan
                                           for g in range(search.iteration + 1)], "k-", label="best so far")
    ax.set(xlabel="iteration", ylabel="score (higher is better)", title="proxy scores by iteration")
    ax.set_xticks(range(search.iteration + 1))
    ax.legend()
    out["score_by_iteration.png"] = _png(fig)
    if search.fits:
        out["predictor_fit_by_iteration.png"] = fit_png(search.fits)
    if search.predictor is not None:
        fig, ax = plt.subplots(figsize=(5, 5))
        guess = search.predictor.predict(np.array([t.weights for t in done]))
        ax.scatter(scores, guess, s=14)
        low, high = min(scores.min(), guess.min()), max(scores.max(), guess.max())
        ax.plot([low, high], [low, high], "k--", lw=1)
        ax.set(xlabel="measured score", ylabel="predicted score (final fit, in-sample)",
               title="predictor vs measured")
        out["predicted_vs_measured.png"] = _png(fig)
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(search.names)), 4))
    ax.bar(search.names, answer["weights"])
    ax.set(ylabel="weight", title=f"final mixture ({answer['source']})")
    ax.tick_params(axis="x", rotation=60)
    out["final_weights.png"] = _png(fig)
    return out


def pareto_png(search: ClimbSearch) -> bytes:
    """Two components against each other: each measured mixture (its mean scores) and the front of the
    mixtures predicted best in one component for what they give up in the other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from climb_ray.objective import fit_components, pareto_front, predicted_front, recorded, table

    names = recorded(search.trials)
    x, y = table([(t.weights, t.components) for t in search.trials if t.status == "done"], names)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(y[:, 0], y[:, 1], s=14, alpha=0.6, color="#8c8c8c", label=f"measured ({len(x)} mixtures)")
    measured = np.sort(pareto_front(y))
    ax.scatter(y[measured, 0], y[measured, 1], s=22, color="#4c72b0", label="measured, not dominated")
    if len(x) >= 2:
        predictors = fit_components(x, y, search.predictor_cfg, clusters=search.names, components=names,
                                    seed=search.seed)
        _, front = predicted_front(predictors, search.sampler, x, seed=search.seed)
        flat = [n for n, p in predictors.items() if p.degenerate]  # a fit that cannot rank mixtures
        ax.plot(front[:, 0], front[:, 1], "o-", ms=3, color="#dd8452", label=f"predicted front ({len(front)})"
                + (f"; degenerate fit of {', '.join(flat)}" if flat else ""))
    ax.set(xlabel=f"{names[0]} (higher is better)", ylabel=f"{names[1]} (higher is better)",
           title="the trade-off between the two targets")
    ax.legend(fontsize=8)
    return _png(fig)


def fit_png(fits: list[dict]) -> bytes:
    """The predictor's held-out quality after each iteration: Spearman's rho and the mean absolute error
    (out-of-fold over all results with the ensemble; a missing point had too few results to hold out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fits = list({f.get("through", f["iteration"]): f for f in fits}.values())  # a refit on the same results: the last
    gens = [f.get("through", f["iteration"]) for f in fits]
    rho = [f.get("spearman") if f.get("spearman") is not None else np.nan for f in fits]
    mae = [f.get("mae") if f.get("mae") is not None else np.nan for f in fits]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(gens, rho, "o-", color="#4c72b0", label="Spearman (held out)")
    ax.set(xlabel="fitted on the results of iterations 0 to", ylabel="Spearman's rho, held out",
           ylim=(-1.05, 1.05), title="the predictor's fit after each iteration")
    ax.set_xticks(gens)
    ax.axhline(0, color="grey", lw=0.8)
    right = ax.twinx()
    right.plot(gens, mae, "s--", color="#dd8452", label="MAE (held out)")
    right.set_ylabel("mean absolute error, held out")
    for g, f in zip(gens, fits):
        if f.get("degenerate"):
            ax.annotate("degenerate", (g, 0), fontsize=8, color="#b3261e", ha="center")
    lines = ax.get_legend_handles_labels(), right.get_legend_handles_labels()
    ax.legend(lines[0][0] + lines[1][0], lines[0][1] + lines[1][1], loc="lower right")
    return _png(fig)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
