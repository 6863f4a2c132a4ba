"""`climb-ray doremi` and `climb-ray compare`: other mixture methods on the run's clusters, target
and proxy-token budget, and every answer scored by the same evaluation proxies over several seeds.

    <run>/doremi/weights.json               DoReMi's answer and its weight history
    <run>/compare/<method>/                 a search by another method (trials.parquet, best_mixture.json...)
    <run>/compare/<method>/seed-<s>/        search seed s >= 1 of any method (the run's seed + s)
    <run>/compare/eval/<key>-s<seed>.json   one evaluation proxy, keyed by its mixture, settings and target
                                            (kept: a killed compare resumes; a mixture two methods share trains once)
    <run>/compare/results.json, table.md    the table (table.png: as a chart)

Search seed 0 is the run's own seed: the method the run's search uses (search.method) is read from
<run>/search/ and DoReMi from <run>/doremi/, not run again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from climb_ray import log, tracking
from climb_ray.artifacts import (BEST_MIXTURE, COMPARE_RESULTS, COMPARE_TABLE, COMPARE_TABLE_PNG, RunDir, StageResult,
                                 TOKENS_META, in_search, run_stage)
from climb_ray.config import Config
from climb_ray.stages.pipeline import PROXY_RESULT_FIELDS, run_pipeline, stage_depends
from climb_ray.stages.search import SearchResult, absolute, search_stage, with_absolute_paths

LOG = log.get(__name__)

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
    run_pipeline(cfg, until="tokens", redo=tuple(r for r in redo if r != "doremi"))
    run = RunDir(cfg.run_dir)
    return run, _doremi_stage(cfg, run, 0, redo)


def _doremi_stage(cfg: Config, run: RunDir, search_seed: int, redo: tuple[str, ...]) -> StageResult:
    from climb_ray.adapters.ray_doremi import run_doremi_task
    from climb_ray.adapters.ray_runtime import ensure_ray

    out, scfg = answer_folder(cfg, "doremi", search_seed), seeded(cfg, search_seed)

    def work() -> dict:
        ensure_ray(cfg.resources)
        result = run_doremi_task(with_absolute_paths(scfg), absolute(run.url("tokens")))
        run.write_json(f"{out}/weights.json", result)
        return {"weights": result["weights"], "steps": result["steps"], "tokens": result["tokens"],
                "seconds": round(result["reference_seconds"] + result["proxy_seconds"], 1),
                "device": result["device"]}

    return run_stage(run, out, doremi_depends(scfg), work, redo=out in redo)


def answer_folder(cfg: Config, method: str, search_seed: int) -> str:
    """Where a method's search with one search seed lives: seed 0 is the run's own (search/ for
    search.method, doremi/ for DoReMi, compare/<method>/ for the others), seed s >= 1 compare/<method>/seed-<s>/."""
    if search_seed:
        return f"compare/{method}/seed-{search_seed}"
    return {cfg.search.method: "search", "doremi": "doremi"}.get(method, f"compare/{method}")


def seeded(cfg: Config, search_seed: int) -> Config:
    """The run's config with seed + search_seed: the seed of the search's sampler, predictor and proxies."""
    return dataclasses.replace(cfg, seed=cfg.seed + search_seed)


def method_mixture(cfg: Config, run: RunDir, method: str, redo: tuple[str, ...], search_seed: int = 0) -> dict:
    """{"weights": {cluster: weight}, "compute": proxy runs, tokens and seconds} of one method's answer
    with one search seed (the stages up to tokens are done)."""
    out = answer_folder(cfg, method, search_seed)
    if method == "doremi":
        info = _doremi_stage(cfg, run, search_seed, redo).info
        return {"weights": info["weights"], "compute": {"proxy_runs": 2, "proxy_tokens": info["tokens"],
                                                        "proxy_seconds": info["seconds"]}}
    if out == "search":
        info = run_pipeline(cfg, until="search", redo=redo).results[-1].info
    else:
        mcfg = seeded(cfg, search_seed)
        mcfg = dataclasses.replace(mcfg, search=dataclasses.replace(mcfg.search, method=method))
        info = run_stage(run, out, stage_depends(mcfg, "search"), lambda: search_stage(mcfg, run, out=out),
                         redo=any(out == r or out.startswith(r + "/") for r in redo)).info
    compute = _search_compute(cfg, run, out, SearchResult.from_json(info))
    return {"weights": run.read_json(in_search(BEST_MIXTURE, out))["weights"], "compute": compute}


def _search_compute(cfg: Config, run: RunDir, out: str, result: SearchResult) -> dict:
    from climb_ray.adapters.ray_tune import proxy_seconds

    if result.proxy_seconds is not None:
        return {"proxy_runs": result.proxy_runs, "proxy_tokens": result.proxy_tokens,
                "proxy_seconds": result.proxy_seconds}
    p, runs = cfg.proxy, result.trials  # a search made before these figures were kept: count them now
    return {"proxy_runs": runs, "proxy_tokens": runs * p.tokens,
            "proxy_seconds": round(proxy_seconds(absolute(run.url(out, "tune"))), 1)}


def reference_mixture(name: str, meta: dict) -> dict:
    from climb_ray.tokens import token_shares

    names = meta["clusters"]
    weights = np.full(len(names), 1 / len(names)) if name == "uniform" else token_shares(meta)
    return {"weights": {n: float(w) for n, w in zip(names, weights)}}


def eval_config(cfg: Config) -> Config:
    return dataclasses.replace(cfg, proxy=dataclasses.replace(cfg.proxy, steps=cfg.compare.eval_steps or cfg.proxy.steps))


def target_fingerprint(cfg: Config) -> str:
    """A digest of the target files' bytes: an evaluation proxy scored on other text is not reused."""
    import fsspec

    from climb_ray.corpus import list_files

    digest = hashlib.sha256()
    for url, _ in list_files(list(cfg.target.paths)):
        with fsspec.open(url, "rb") as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def evaluate_all(cfg: Config, run: RunDir, mixtures: dict[str, dict]) -> dict[str, list[float]]:
    """Each mixture's scores, one evaluation proxy per seed (in seed order); proxies already trained
    with the same mixture, settings and target are read back (a mixture several labels share is
    trained once), the others run as Ray tasks side by side."""
    from climb_ray.adapters.ray_doremi import evaluate
    from climb_ray.baselines.doremi import epoch_caps, fit_to_caps
    from climb_ray.token_sample import check_sample

    ecfg, meta = with_absolute_paths(eval_config(cfg)), run.read_json(TOKENS_META)
    names, p = meta["clusters"], ecfg.proxy
    target = {k: v for k, v in dataclasses.asdict(ecfg.target).items()  # fields added for target.tasks: only
              if v or k not in ("tasks", "task_dir", "num_fewshot")}  # when set (earlier evaluations stay kept)
    settings = {**{f: _get(ecfg, f) for f in PROXY_RESULT_FIELDS}, "target": target,
                "target_sha256": target_fingerprint(cfg), "search.max_epochs": ecfg.search.max_epochs}
    check_sample(meta, p.tokens, ecfg.search.max_epochs, "each evaluation proxy")
    caps = epoch_caps([meta["tokens"][n] for n in names], max_epochs=ecfg.search.max_epochs,
                      n_sequences=p.sequences, seq_len=p.context)
    seeds = range(EVAL_SEED, EVAL_SEED + cfg.compare.seeds)
    scores = {label: [None] * len(seeds) for label in mixtures}
    waiting: dict[str, list[tuple[str, int]]] = {}  # proxy key -> the (label, seed index) it scores
    jobs, stored = [], {}
    for label, mixture in mixtures.items():
        asked = np.array([mixture["weights"].get(n, 0.0) for n in names], dtype=np.float64)
        weights = fit_to_caps(asked, caps)  # an answer beyond the evaluation proxy's epoch caps is capped
        mixture["capped"] = bool(np.abs(weights - asked / asked.sum()).max() > 1e-9)
        mixture["answer"] = mixture["weights"]  # as the method gave it (best_mixture.json rounds to 1e-6)
        mixture["weights"] = {n: float(w) for n, w in zip(names, weights)}  # what the proxies trained on
        record = {"weights": weights.round(12).tolist(), "settings": settings}
        digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
        for i, seed in enumerate(seeds):
            key = f"{digest}-s{seed}"
            path = f"compare/eval/{key}.json"
            if key not in waiting:
                old = run.read_json(path) if run.exists(path) else {}
                if {k: old.get(k) for k in record} == record:
                    scores[label][i] = old["score"]
                    continue
                stored[key], waiting[key] = (label, path, record), []
                jobs.append((key, weights.tolist(), seed, run.local_path(f"compare/eval/{key}")))
            waiting[key].append((label, i))

    def done(key: str, result: dict) -> None:
        label, path, record = stored[key]
        run.write_json(path, {**record, "label": label, "score": result["score"], "seed": result["seed"],
                              "result": result})
        for waiter, i in waiting[key]:
            scores[waiter][i] = result["score"]
        LOG.info(f"  evaluated {label} (seed {result['seed']}): score {result['score']:.4f}")

    if jobs:
        kept = sum(x is not None for got in scores.values() for x in got)
        LOG.info(f"compare: {len(jobs)} evaluation proxies to train ({kept} scores kept from before)")
        evaluate(ecfg, absolute(run.url("tokens")), jobs, done)
    return scores


def answer_label(group: str, search_seed: int) -> str:
    return group if search_seed == 0 else f"{group}/seed-{search_seed}"


def compare(cfg: Config, redo: tuple[str, ...] = ()) -> dict:
    """Every method of compare.methods, searched with compare.search_seeds seeds, and every reference
    mixture, evaluated; the table is written to compare/results.json and compare/table.md and returned."""
    from climb_ray.adapters.ray_runtime import ensure_ray
    from climb_ray.compare import format_table, rows, table_png
    from climb_ray.evaluate import check_targets

    if not cfg.proxy.command:  # your trainer scores itself
        check_targets(cfg.target)
    if any(method != "doremi" for method in cfg.compare.methods):
        tracking.check(cfg.tracking)  # a search's tracker set but not installed: before minutes of embedding
    check_seeds(cfg)
    run_pipeline(cfg, until="tokens", redo=redo)
    run = RunDir(cfg.run_dir)
    ensure_ray(cfg.resources)
    groups: dict[str, list[dict]] = {}
    for method in cfg.compare.methods:
        groups[method] = []
        for search_seed in range(cfg.compare.search_seeds):
            LOG.info(f"compare: {answer_label(method, search_seed)} ...")
            mixture = method_mixture(cfg, run, method, redo, search_seed)
            groups[method].append(mixture)
            top = sorted(mixture["weights"].items(), key=lambda kv: -kv[1])[:3]
            LOG.info(f"compare: {answer_label(method, search_seed)} answers " + ", ".join(f"{n} {w:.3f}" for n, w in top))
    meta = run.read_json(TOKENS_META)
    groups.update({r: [reference_mixture(r, meta)] for r in cfg.compare.references if r not in groups})
    scores = evaluate_all(cfg, run, {answer_label(g, s): m for g, answers in groups.items()
                                     for s, m in enumerate(answers)})
    table = rows(groups, {g: [scores[answer_label(g, s)] for s in range(len(answers))] for g, answers in groups.items()})
    p = eval_config(cfg).proxy
    proxy = (f"{p.num_layers} layers x {p.hidden_size}, {p.steps} steps of {p.batch_size} x {p.context} tokens")
    text = format_table(table, seeds=cfg.compare.seeds, proxy=proxy)
    run.write_json(COMPARE_RESULTS, {
        "rows": table, "proxy": proxy, "seeds": cfg.compare.seeds, "search_seeds": cfg.compare.search_seeds,
        "eval_seeds": list(range(EVAL_SEED, EVAL_SEED + cfg.compare.seeds)),
        "run_seeds": [cfg.seed + s for s in range(cfg.compare.search_seeds)],
        "capped": [answer_label(g, s) for g, answers in groups.items() for s, m in enumerate(answers) if m.get("capped")]})
    run.write_text(COMPARE_TABLE, text)
    run.write_bytes(COMPARE_TABLE_PNG, table_png(table))
    return {"table": table, "text": text, "run": run.url()}


def check_seeds(cfg: Config) -> None:
    """The searches' seeds (run seed + search seed; DoReMi also uses the next one) must not be
    evaluation seeds: an evaluation proxy would repeat a search proxy's initialisation and batches."""
    from climb_ray.config import ConfigError

    used = set(range(cfg.seed, cfg.seed + cfg.compare.search_seeds + 1))
    clash = sorted(used & set(range(EVAL_SEED, EVAL_SEED + cfg.compare.seeds)))
    if clash:
        raise ConfigError(f"seed={cfg.seed} with compare.search_seeds={cfg.compare.search_seeds} uses seed {clash[0]}, "
                          f"an evaluation seed ({EVAL_SEED}-{EVAL_SEED + cfg.compare.seeds - 1}): choose a smaller seed")
