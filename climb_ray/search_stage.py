"""The search stage: a ClimbSearch over the run's super-clusters, run as Ray Tune trials, then its
outputs: search/trials.parquet, predictor.txt (+ predictor.json), best_mixture.json and PNGs."""

from __future__ import annotations

import io

import numpy as np

from climb_ray.artifacts import RunDir
from climb_ray.config import Config
from climb_ray.samplers import RegMixSampler
from climb_ray.search import ClimbSearch


def make_search(cfg: Config, meta: dict) -> ClimbSearch:
    """The configured strategy over the clusters of tokens/meta.json, with the token-share prior."""
    names = list(meta["clusters"])
    tokens = np.array([meta["tokens"][n] for n in names], dtype=np.float64)
    s, p = cfg.search, cfg.proxy
    budget = p.steps * p.batch_size * p.context
    sampler = RegMixSampler(tokens / tokens.sum(), temperature=s.temperature, strength_min=s.strength_min,
                            strength_max=s.strength_max, max_epochs=s.max_epochs, min_weight=s.min_weight,
                            cap=s.max_epochs * tokens / budget)
    return ClimbSearch(sampler, names, s, cfg.predictor, seed=cfg.seed, strategy=s.method)


def search_stage(cfg: Config, run: RunDir, out: str = "search") -> dict:
    """The search into <run>/<out>/ (`climb-ray compare` runs other methods into compare/<method>/;
    only the run's own search publishes each new predictor to search/predictor.txt as it goes)."""
    import time

    from climb_ray.adapters.ray_tune import proxy_seconds, run_search

    from tokenizers import Tokenizer

    from climb_ray.evaluate import check_targets, load_target

    tokenizer = Tokenizer.from_str(run.read_bytes("tokens/tokenizer.json").decode("utf-8"))
    try:
        for path in check_targets(cfg.target):  # a bad target stops here, not in every trial
            load_target(path, tokenizer, cfg.target)
    except Exception:
        run.clear_stage(out)  # nothing ran: the corrected command starts afresh
        raise
    meta = run.read_json("tokens/meta.json")
    storage = absolute(run.url(out, "tune"))
    cfg = with_absolute_paths(cfg)  # Tune runs each trial in its own folder: relative paths would break
    start = time.perf_counter()
    search, trial_ids = run_search(cfg, make_search(cfg, meta), absolute(run.url("tokens")), storage,
                                   publish_to=absolute(run.url()) if out == "search" else None)
    info = write_outputs(run, search, trial_ids, run.read_json("cluster/clusters.json"), out=out)
    p = cfg.proxy
    done = sum(t.status == "done" for t in search.trials)
    return {**info, "wall_seconds": round(time.perf_counter() - start, 1), "proxy_runs": len(search.trials),
            "proxy_tokens": len(search.trials) * p.steps * p.batch_size * p.context,
            "proxy_seconds": round(proxy_seconds(storage), 1), "proxies_done": done}


def absolute(url: str) -> str:
    """A local path made absolute; URIs (s3://...) as they are."""
    import os

    return url if "://" in url else os.path.abspath(url)


def with_absolute_paths(cfg: Config) -> Config:
    """A copy of cfg whose local target and checkpoint paths are absolute (for workers in other folders)."""
    import dataclasses

    target = dataclasses.replace(cfg.target, paths=[absolute(p) for p in cfg.target.paths])
    proxy = dataclasses.replace(cfg.proxy, init_from=absolute(cfg.proxy.init_from) if cfg.proxy.init_from else "")
    return dataclasses.replace(cfg, target=target, proxy=proxy)


def write_outputs(run: RunDir, search: ClimbSearch, trial_ids: dict, clusters: dict, out: str = "search") -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from climb_ray.search_report import best_mixture, report_pngs

    rows = [{"trial_id": trial_ids.get(i, ""), "index": i, "iteration": t.generation,
             **{f"w_{n}": float(w) for n, w in zip(search.names, t.weights)}, "score": t.score, "status": t.status}
            for i, t in enumerate(search.trials)]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    run.write_bytes(f"{out}/trials.parquet", buffer.getvalue())
    answer = search.answer()
    if search.predictor is not None:
        model, sidecar = search.predictor.to_text()
        run.write_text(f"{out}/predictor.txt", model)
        run.write_text(f"{out}/predictor.json", sidecar)
    best = best_mixture(search, answer, clusters)
    run.write_json(f"{out}/best_mixture.json", best)
    for name, png in report_pngs(search, answer).items():
        run.write_bytes(f"{out}/{name}", png)
    failed = sum(t.status == "failed" for t in search.trials)
    return {"strategy": search.strategy, "trials": len(search.trials), "failed": failed,
            "generations": search.generation + 1, "predicted": best["predicted_score"],
            "best_seen": best["best_seen"]["score"], "weights": best["weights"],
            "top_terms": {c["name"]: c["top_terms"][:5] for c in best["clusters"]}}
