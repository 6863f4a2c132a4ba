"""The search stage: a ClimbSearch over the run's super-clusters, run as Ray Tune trials, then its
outputs: search/trials.parquet, predictor.txt (+ predictor.json), best_mixture.json and PNGs; and
the same outputs re-answered from the recorded search (search_plan.py says when)."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field

import numpy as np

from climb_ray import log, tracking
from climb_ray.artifacts import (BEST_MIXTURE, CLUSTERS, PREDICTOR, PREDICTOR_SIDECAR, TOKENIZER, TOKENS_META, TRIALS,
                                 RunDir, Summary, in_search)
from climb_ray.config import Config
from climb_ray.mixture import weight_caps
from climb_ray.samplers import RegMixSampler
from climb_ray.search import ClimbSearch
from climb_ray.token_sample import check_sample
from climb_ray.stages.search_plan import STATE, read_recorded, start_record, with_schedule

LOG = log.get(__name__)


def make_search(cfg: Config, meta: dict) -> ClimbSearch:
    """The configured method over the clusters of tokens/meta.json, with the token-share prior."""
    names = list(meta["clusters"])
    tokens = np.array([meta["tokens"][n] for n in names], dtype=np.float64)
    s, p = cfg.search, cfg.proxy
    budget = p.tokens
    check_fits(tokens, budget, cfg)
    check_sample(meta, budget, s.max_epochs, "each search proxy")
    sampler = RegMixSampler(tokens / tokens.sum(), temperature=s.temperature, strength_min=s.strength_min,
                            strength_max=s.strength_max, max_epochs=s.max_epochs, min_weight=s.min_weight,
                            cap=weight_caps(tokens, budget, s.max_epochs))
    return ClimbSearch(sampler, names, s, cfg.predictor, seed=cfg.seed, method=s.method)


FIT_MARGIN = 1.25  # the caps must add up to this much (1 = a single mixture fits: nothing to search)


def check_fits(tokens: np.ndarray, budget: int, cfg: Config) -> None:
    """No mixture can be drawn when the proxy trains on more tokens than max_epochs passes over the
    whole corpus allow: say so before any trial starts, with the largest proxy settings that fit."""
    from climb_ray.config import ConfigError

    s, p = cfg.search, cfg.proxy
    total = float(tokens.sum())
    if total <= 0:
        raise ConfigError("the corpus has no tokens: nothing to search over (see the corpus stage's skip counts)")
    cap = np.minimum(np.minimum(weight_caps(tokens, total, s.max_epochs), 1.0), weight_caps(tokens, budget, s.max_epochs))
    if cap.sum() >= FIT_MARGIN:
        return
    room = s.max_epochs * total / FIT_MARGIN  # at the bare limit only the prior itself fits: leave room
    raise ConfigError(
        f"no mixture fits the epoch caps: the corpus has {int(total):,} tokens and each proxy trains on "
        f"{budget:,} (proxy.steps {p.steps} x batch_size {p.batch_size} x context {p.context}), too many for "
        f"search.max_epochs={s.max_epochs:g} passes to leave a choice (at most {int(room):,}); set proxy.steps <= "
        f"{int(room // (p.batch_size * p.context))}, proxy.batch_size <= {int(room // (p.steps * p.context))} or "
        f"proxy.context <= {int(room // (p.steps * p.batch_size))}, raise search.max_epochs, or use a larger corpus")


def search_stage(cfg: Config, run: RunDir, out: str = "search") -> SearchResult:
    """The search into <run>/<out>/ (`climb-ray compare` runs other methods into compare/<method>/;
    only the run's own search publishes each new predictor to search/predictor.txt as it goes)."""
    import time

    from climb_ray.adapters.ray_tune import proxy_seconds

    from tokenizers import Tokenizer

    from climb_ray.evaluate import check_targets, load_target
    from climb_ray.lm_eval_tasks import load_tasks

    tokenizer = Tokenizer.from_str(run.read_bytes(TOKENIZER).decode("utf-8"))
    try:
        for path in [] if cfg.proxy.command else check_targets(cfg.target):  # a bad target stops here, not
            load_target(path, tokenizer, cfg.target)  # in every trial (proxy.command's trainer scores itself)
        if not cfg.proxy.command:
            load_tasks(cfg.target, tokenizer, int(run.read_json(TOKENS_META)["eot_id"]))
        make_search(cfg, run.read_json(TOKENS_META))  # so does a proxy budget no mixture fits
        if cfg.proxy.init == "pretrained":  # and a model that does not load or fit the run's tokenizer
            from climb_ray.proxy import check_pretrained

            check_pretrained(cfg.proxy, tokenizer, int(run.read_json(TOKENS_META)["vocab_size"]))
    except Exception:
        if not run.exists(out, STATE) and not run.exists(out, "tune"):
            run.clear_stage(out)  # nothing ran: the corrected command starts afresh
        raise
    meta = run.read_json(TOKENS_META)
    storage = absolute(run.url(out, "tune"))
    cfg = with_absolute_paths(cfg)  # Tune runs each trial in its own folder: relative paths would break
    start = time.perf_counter()
    before = len(run.read_json(f"{out}/{STATE}")["search"]["trials"]) if run.exists(out, STATE) else 0
    search, trial_ids = run_experiments(cfg, run, meta, storage, out)
    info = write_outputs(run, search, trial_ids, run.read_json(CLUSTERS), out=out)
    tracking.log_search(cfg, search, info.to_json(), name=out)  # with tracking.mlflow_uri; a failing store warns
    p = cfg.proxy
    done = sum(t.status == "done" for t in search.trials)
    return dataclasses.replace(info, wall_seconds=round(time.perf_counter() - start, 1),
                               proxy_runs=len(search.trials), proxy_tokens=len(search.trials) * p.tokens,
                               proxy_seconds=round(proxy_seconds(storage), 1), proxies_done=done, continued_from=before)


def run_experiments(cfg: Config, run: RunDir, meta: dict, storage: str, out: str) -> tuple[ClimbSearch, dict]:
    """Run the Tune experiments of <out>/schedule.json not finished yet, each from the state the one before
    left (<out>/state.json, written as each finishes); the search at the end, and its trials' Tune ids."""
    from climb_ray.adapters.ray_tune import run_search

    record = start_record(run, out, cfg.search.schedule)
    state = read_recorded(run, out, STATE) if run.exists(out, STATE) else None
    names = [e["name"] for e in record["experiments"]]
    search, trial_ids = None, {}
    for experiment in record["experiments"][names.index(state["experiment"]) + 1 if state else 0:]:
        search = make_search(with_schedule(cfg, experiment["iterations"]), meta)
        if state:  # a continuation: the recorded search, with its longer schedule
            restore_reweighted(search, state["search"], cfg)
            trial_ids = {int(k): v for k, v in state["trial_ids"].items()}
            LOG.info(f"search: continuing the recorded search ({len(search.trials)} trials) to iterations "
                     f"{experiment['iterations']} in {storage}/{experiment['name']}")
        search, trial_ids = run_search(cfg, search, absolute(run.url("tokens")), storage,
                                       publish_to=absolute(run.url()) if out == "search" else None,
                                       experiment=experiment["name"], trial_ids=trial_ids, stage=out)
        state = {"experiment": experiment["name"], "iterations": experiment["iterations"],
                 "search": search.state(), "trial_ids": {str(k): v for k, v in trial_ids.items()}}
        run.write_json(f"{out}/{STATE}", state)  # before the answer, which draws from the search's generator
    if search is None:  # every experiment had finished (a run killed while writing its outputs)
        search, trial_ids = restored_search(cfg, run, meta, out)
    return search, trial_ids


def restored_search(cfg: Config, run: RunDir, meta: dict, out: str = "search") -> tuple[ClimbSearch, dict]:
    """The search as <out>/state.json recorded it when its last experiment finished, and its Tune trial ids."""
    state = read_recorded(run, out, STATE)
    search = make_search(with_schedule(cfg, state["iterations"]), meta)
    restore_reweighted(search, state["search"], cfg)
    return search, {int(k): v for k, v in state["trial_ids"].items()}


def restore_reweighted(search: ClimbSearch, state: dict, cfg: Config) -> ClimbSearch:
    """`search` restored to its recorded state, its scores recombined with cfg's target.weights when every
    measured trial recorded each target's score (so a change of target.weights needs no proxy)."""
    from climb_ray.objective import reweight, reweightable, target_components

    search.restore(state)
    if reweightable(cfg, search.trials):
        reweight(search.trials, target_components(cfg.target), cfg.target.weights)
    return search


def reanswer(cfg: Config, run: RunDir, out: str = "search") -> SearchResult:
    """The outputs of the recorded search answered with cfg's answer and predictor settings; no proxy trains."""
    search, trial_ids = restored_search(cfg, run, run.read_json(TOKENS_META), out)
    return write_outputs(run, search, trial_ids, run.read_json(CLUSTERS), out=out)


def absolute(url: str) -> str:
    """A local path made absolute; URIs (s3://...) as they are."""
    import os

    return url if "://" in url else os.path.abspath(url)


def with_absolute_paths(cfg: Config) -> Config:
    """A copy of cfg whose local target and checkpoint paths are absolute (for workers in other folders;
    an init_from that is no local folder is a hub name, kept)."""
    import dataclasses
    import os

    t = cfg.target  # task YAMLs and their folder too (a relative task_dir would let lm-eval pick its own task)
    target = dataclasses.replace(t, paths=[absolute(p) for p in t.paths],
                                 task_dir=absolute(t.task_dir) if t.task_dir else "",
                                 tasks=[absolute(s) if s.endswith((".yaml", ".yml")) else s for s in t.tasks])
    init_from = cfg.proxy.init_from
    proxy = dataclasses.replace(cfg.proxy, init_from=absolute(init_from) if os.path.exists(init_from) else init_from)
    return dataclasses.replace(cfg, target=target, proxy=proxy)


def write_outputs(run: RunDir, search: ClimbSearch, trial_ids: dict, clusters: dict,
                  out: str = "search") -> SearchResult:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from climb_ray.objective import COLUMN, recorded
    from climb_ray.search_report import best_mixture, pareto_png, report_pngs

    components = list(dict.fromkeys(n for t in search.trials for n in t.components or {}))
    rows = [{"trial_id": trial_ids.get(i, ""), "index": i, "iteration": t.iteration, "repeat": t.repeat,
             **{f"w_{n}": float(w) for n, w in zip(search.names, t.weights)}, "score": t.score, "status": t.status,
             **{f"{COLUMN}{n}": (t.components or {}).get(n) for n in components}}
            for i, t in enumerate(search.trials)]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    run.write_bytes(in_search(TRIALS, out), buffer.getvalue())
    answer = search.answer()
    if search.predictor is not None:
        model, sidecar = search.predictor.to_text()
        run.write_text(in_search(PREDICTOR_SIDECAR, out), sidecar)
        run.write_text(in_search(PREDICTOR, out), model)  # last, as each iteration does: a watcher reloads on it
    best = best_mixture(search, answer, clusters)
    run.write_json(in_search(BEST_MIXTURE, out), best)
    for name, png in report_pngs(search, answer).items():
        run.write_bytes(f"{out}/{name}", png)
    if len(recorded(search.trials) or []) == 2:
        run.write_bytes(f"{out}/pareto.png", pareto_png(search))
    failed = sum(t.status == "failed" for t in search.trials)
    return SearchResult(method=search.method, trials=len(search.trials), failed=failed,
                        iterations=search.iteration + 1, predicted=best["predicted_score"],
                        best_seen=best["best_seen"]["score"], weights=best["weights"], answer=best["answer"],
                        estimate=best["estimate"], interval=best["interval"], measurements=best["measurements"],
                        degenerate=best["degenerate"],
                        top_terms={c["name"]: c["top_terms"][:5] for c in best["clusters"]})


@dataclass
class SearchResult(Summary):
    # the answer (write_outputs; a re-answer replaces these)
    method: str = ""
    trials: int = 0
    failed: int = 0
    iterations: int = 0
    predicted: float = 0.0  # the answer's predicted score
    best_seen: float = 0.0  # the best measured score
    weights: dict = field(default_factory=dict)  # the answer
    answer: str = "best_predicted"  # how it was chosen (search.answer)
    estimate: float | None = None  # answer confirmed: its estimated score
    interval: list | None = None  # and its 95% interval
    measurements: int | None = None
    degenerate: str | None = None  # why the predictor did not choose the answer
    top_terms: dict = field(default_factory=dict)  # each cluster's first terms
    # what the proxies cost (search_stage; absent from a search made before they were kept)
    wall_seconds: float | None = None
    proxy_runs: int | None = None
    proxy_tokens: int | None = None
    proxy_seconds: float | None = None
    proxies_done: int | None = None
    continued_from: int = 0  # trials recorded before this run (a longer schedule, --extend)
    reanswered: dict | None = None  # {"changed", "seconds"} when only answer settings changed

    def reanswered_by(self, new: SearchResult) -> SearchResult:
        """`new` (this search re-answered from its recorded trials) with this search's proxy figures."""
        return dataclasses.replace(new, **{name: getattr(self, name) for name in (
            "wall_seconds", "proxy_runs", "proxy_tokens", "proxy_seconds", "proxies_done", "continued_from")})

    @classmethod
    def from_json(cls, info: dict) -> SearchResult:  # older searches: the method was 'strategy', iterations 'generations'
        return super().from_json({"method": info.get("strategy", ""), "iterations": info.get("generations", 0), **info})

    def describe(self) -> str:
        rows = "".join(f"\n              {name}  {weight:6.3f}  {', '.join(self.top_terms.get(name, []))}"
                       for name, weight in sorted(self.weights.items(), key=lambda x: -x[1]))
        how = ""
        if self.reanswered:
            how = (f"re-answered from the recorded trials in {self.reanswered['seconds']:.1f} s, no proxy trained "
                   f"({', '.join(self.reanswered['changed'])} changed); ")
        elif self.continued_from:
            how = f"continued from {self.continued_from} recorded trials; "
        return (f"{how}{self.trials} proxy trials in {self.iterations} iteration(s) ({self.failed} failed), "
                f"method {self.method} -> {BEST_MIXTURE}, trials.parquet, predictor.txt, *.png\n"
                f"            best mixture: {answer_line(self)}; higher is better (answer {self.answer}){rows}")


def answer_line(result: SearchResult) -> str:
    """The search's answer in words: its estimate and interval, or its predicted score."""
    interval, estimate = result.interval, result.estimate
    if estimate is None:
        line = f"predicted score {result.predicted:.4f}"
    else:
        line = f"estimated score {estimate:.4f}"
        line += f" (95% interval {interval[0]:.4f} to {interval[1]:.4f})" if interval else " (noise not measured)"
        line += f", measured {result.measurements} time(s)" if result.measurements else ""
    line += f"; best seen {result.best_seen:.4f}"
    if result.degenerate:
        line += f"\n            the predictor is degenerate ({result.degenerate}): it did not choose the answer"
    return line
