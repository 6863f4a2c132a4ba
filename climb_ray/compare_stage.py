"""`climb-ray doremi` and `climb-ray compare`: other mixture methods on the run's clusters, target
and proxy-token budget, and every answer scored by the same evaluation proxies over several seeds.

    <run>/doremi/weights.json               DoReMi's answer and its weight history
    <run>/compare/<method>/                 a search by another method (trials.parquet, best_mixture.json...)
    <run>/compare/eval/<mixture>-s<seed>.json  one evaluation proxy (kept: a killed compare resumes)
    <run>/compare/results.json, table.md    the table

The method the run's search uses (search.method) is read from <run>/search/, not run again.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from climb_ray.artifacts import RunDir, StageResult, run_stage
from climb_ray.config import Config
from climb_ray.pipeline import PROXY_RESULT_FIELDS, run_pipeline, stage_depends
from climb_ray.search_stage import absolute, search_stage, with_absolute_paths

EVAL_SEED = 1000  # evaluation proxies use seeds 1000, 1001, ...: never the search's own


def doremi_depends(cfg: Config) -> dict:
    """What DoReMi's answer depends on: the shards, the proxy shape, its settings and the budget it matches."""
    fields = {f: _get(cfg, f) for f in [*PROXY_RESULT_FIELDS, "search.schedule", "search.max_epochs"]}
    return {**stage_depends(cfg, "tokens"), **fields, "doremi": dataclasses.asdict(cfg.doremi)}


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def doremi(cfg: Config, redo: tuple[str, ...] = ()) -> tuple[RunDir, StageResult]:
    """Run the stages up to tokens when needed, then DoReMi (skipped when done with these settings)."""
    from climb_ray.adapters.ray_doremi import run_doremi_task
    from climb_ray.adapters.ray_runtime import ensure_ray

    run_pipeline(cfg, until="tokens", redo=tuple(r for r in redo if r != "doremi"))
    run = RunDir(cfg.run_dir)

    def work() -> dict:
        ensure_ray(cfg.resources)
        result = run_doremi_task(with_absolute_paths(cfg), absolute(run.url("tokens")))
        run.write_json("doremi/weights.json", result)
        return {"weights": result["weights"], "steps": result["steps"], "tokens": result["tokens"],
                "seconds": round(result["reference_seconds"] + result["proxy_seconds"], 1),
                "device": result["device"]}

    return run, run_stage(run, "doremi", doremi_depends(cfg), work, redo="doremi" in redo)


def method_mixture(cfg: Config, run: RunDir, method: str, redo: tuple[str, ...]) -> dict:
    """{"weights": {cluster: weight}, "compute": proxy runs, tokens and seconds} of one method's answer."""
    if method == "doremi":
        info = doremi(cfg, redo)[1].info
        return {"weights": info["weights"], "compute": {"proxy_runs": 2, "proxy_tokens": info["tokens"],
                                                        "proxy_seconds": info["seconds"]}}
    if method == cfg.search.method:
        out, info = "search", run_pipeline(cfg, until="search", redo=redo).results[-1].info
    else:
        out = f"compare/{method}"
        mcfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, method=method))
        info = run_stage(run, out, stage_depends(mcfg, "search"), lambda: search_stage(mcfg, run, out=out),
                         redo=out in redo).info
    return {"weights": run.read_json(f"{out}/best_mixture.json")["weights"], "compute": _search_compute(cfg, run, out, info)}


def _search_compute(cfg: Config, run: RunDir, out: str, info: dict) -> dict:
    from climb_ray.adapters.ray_tune import proxy_seconds

    if "proxy_seconds" in info:
        return {key: info[key] for key in ("proxy_runs", "proxy_tokens", "proxy_seconds")}
    p, runs = cfg.proxy, info["trials"]  # a search made before these figures were kept: count them now
    return {"proxy_runs": runs, "proxy_tokens": runs * p.steps * p.batch_size * p.context,
            "proxy_seconds": round(proxy_seconds(absolute(run.url(out, "tune"))), 1)}


def reference_mixture(name: str, meta: dict) -> dict:
    from climb_ray.tokens import token_shares

    names = meta["clusters"]
    weights = np.full(len(names), 1 / len(names)) if name == "uniform" else token_shares(meta)
    return {"weights": {n: float(w) for n, w in zip(names, weights)}}


def eval_config(cfg: Config) -> Config:
    return dataclasses.replace(cfg, proxy=dataclasses.replace(cfg.proxy, steps=cfg.compare.eval_steps or cfg.proxy.steps))


def evaluate_all(cfg: Config, run: RunDir, mixtures: dict[str, dict]) -> dict[str, list[float]]:
    """Each mixture's scores, one evaluation proxy per seed; proxies already trained with the same
    mixture and settings are read back, the others run as Ray tasks side by side."""
    from climb_ray.adapters.ray_doremi import evaluate
    from climb_ray.baselines.doremi import epoch_caps, fit_to_caps

    ecfg, meta = with_absolute_paths(eval_config(cfg)), run.read_json("tokens/meta.json")
    names, p = meta["clusters"], ecfg.proxy
    settings = {**{f: _get(ecfg, f) for f in PROXY_RESULT_FIELDS}, "target": dataclasses.asdict(ecfg.target),
                "search.max_epochs": ecfg.search.max_epochs}
    caps = epoch_caps([meta["tokens"][n] for n in names], max_epochs=ecfg.search.max_epochs,
                      n_sequences=p.steps * p.batch_size, seq_len=p.context)
    scores, jobs, stored = {label: [] for label in mixtures}, [], {}
    for label, mixture in mixtures.items():
        asked = np.array([mixture["weights"].get(n, 0.0) for n in names], dtype=np.float64)
        weights = fit_to_caps(asked, caps)  # an answer beyond the evaluation proxy's epoch caps is capped
        mixture["capped"] = bool(np.abs(weights - asked / asked.sum()).max() > 1e-9)
        mixture["answer"] = mixture["weights"]  # as the method gave it (best_mixture.json rounds to 1e-6)
        mixture["weights"] = {n: float(w) for n, w in zip(names, weights)}  # what the proxies trained on
        for seed in range(EVAL_SEED, EVAL_SEED + cfg.compare.seeds):
            key, record = f"{label}-s{seed}", {"weights": weights.round(12).tolist(), "settings": settings}
            path = f"compare/eval/{key}.json"
            old = run.read_json(path) if run.exists(path) else {}
            if {k: old.get(k) for k in record} == record:
                scores[label].append(old["score"])
                continue
            stored[key] = (label, path, record)
            jobs.append((key, weights.tolist(), seed))

    def done(key: str, result: dict) -> None:
        label, path, record = stored[key]
        run.write_json(path, {**record, "score": result["score"], "seed": result["seed"], "result": result})
        scores[label].append(result["score"])
        print(f"  evaluated {key}: score {result['score']:.4f}", flush=True)

    if jobs:
        print(f"compare: {len(jobs)} evaluation proxies to train ({len(mixtures) * cfg.compare.seeds - len(jobs)} "
              "kept from before)", flush=True)
        evaluate(ecfg, absolute(run.url("tokens")), jobs, done)
    return scores


def compare(cfg: Config, redo: tuple[str, ...] = ()) -> dict:
    """Every method of compare.methods and every reference mixture, evaluated; the table is written
    to compare/results.json and compare/table.md and returned."""
    from climb_ray.adapters.ray_runtime import ensure_ray
    from climb_ray.compare import format_table, rows
    from climb_ray.evaluate import check_targets

    check_targets(cfg.target)
    run_pipeline(cfg, until="tokens", redo=redo)
    run = RunDir(cfg.run_dir)
    ensure_ray(cfg.resources)
    mixtures = {}
    for method in cfg.compare.methods:
        print(f"compare: {method} ...", flush=True)
        mixtures[method] = method_mixture(cfg, run, method, redo)
        top = sorted(mixtures[method]["weights"].items(), key=lambda kv: -kv[1])[:3]
        print(f"compare: {method} answers " + ", ".join(f"{n} {w:.3f}" for n, w in top), flush=True)
    meta = run.read_json("tokens/meta.json")
    mixtures.update({r: reference_mixture(r, meta) for r in cfg.compare.references if r not in mixtures})
    scores = evaluate_all(cfg, run, mixtures)
    p = eval_config(cfg).proxy
    table = rows(mixtures, scores)
    proxy = (f"{p.num_layers} layers x {p.hidden_size}, {p.steps} steps of {p.batch_size} x {p.context} tokens")
    text = format_table(table, seeds=cfg.compare.seeds, proxy=proxy)
    run.write_json("compare/results.json", {"rows": table, "proxy": proxy, "seeds": cfg.compare.seeds,
                                            "eval_seeds": list(range(EVAL_SEED, EVAL_SEED + cfg.compare.seeds)),
                                            "capped": [k for k, m in mixtures.items() if m.get("capped")]})
    run.write_text("compare/table.md", text)
    return {"table": table, "text": text, "run": run.url()}
