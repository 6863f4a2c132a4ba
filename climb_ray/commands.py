"""What each CLI command does, and the summaries it prints (cli.py only parses arguments)."""

from __future__ import annotations

import json
import posixpath
import sys
import time
from pathlib import Path

from climb_ray import log
from climb_ray.config import Config
from climb_ray.stages.pipeline import ORDER, PipelineReport, describe, run_pipeline
from climb_ray.artifacts import (BEST_MIXTURE, CLUSTERS, COMPARE_RESULTS, COMPARE_TABLE, CONFIG_YAML, TOKENS_META,
                                 in_search)

LOG = log.get(__name__)

DEMO_EXTRA_HINT = "install the demo extra: pip install -e '.[demo]' in the climb_ray checkout (make demo does)"


def corpus_demo(out: str, docs_per_source: int, seed: int, target_out: str | None = None) -> int:
    from climb_ray.democorpus import build_demo_corpus

    if docs_per_source < 1:
        from climb_ray.config import ConfigError

        raise ConfigError(f"--docs-per-source={docs_per_source}: must be at least 1")
    LOG.info(f"building the demo corpus ({docs_per_source} documents per source at most, seed {seed})...")
    try:
        info = build_demo_corpus(out, docs_per_source=docs_per_source, seed=seed, target_path=target_out)
    except ImportError as err:
        print(f"climb-ray: error: a demo source package is missing ({err.name}); {DEMO_EXTRA_HINT}",
              file=sys.stderr)
        return 2
    Path(f"{out}.meta.json").write_text(json.dumps(info, indent=2) + "\n")
    per_source = ", ".join(f"{k} {v}" for k, v in info["per_source"].items())
    LOG.info(f"wrote {info['documents']} documents to {out} ({per_source})")
    if info["target"]:
        parts = ", ".join(f"{n} {s}" for s, n in info["target"]["sources"].items())
        LOG.info(f"wrote the target: {info['target']['documents']} held-out documents ({parts}) to {target_out}")
    return 0


def ensure_demo_corpus(cfg: Config, docs_per_source: int) -> None:
    """Build the demo corpus at corpus.paths[0] (and its target at target.paths[0]) unless they are
    there with the same settings (seed, size, target path and mix). A rebuilt target that differs from
    the one before makes the run's search, export and compare stale: they are removed, to run again."""
    from climb_ray.democorpus import TARGET_MIX

    out = cfg.corpus.paths[0]
    target = cfg.target.paths[0] if cfg.target.paths else None
    meta = Path(f"{out}.meta.json")
    if Path(out).is_file() and meta.is_file() and (target is None or Path(target).is_file()):
        info = json.loads(meta.read_text())
        made = info.get("target") or {}
        if (info.get("seed"), info.get("docs_per_source"), made.get("path")) == (cfg.seed, docs_per_source, target) \
                and (target is None or made.get("mix") == TARGET_MIX):
            LOG.info(f"demo corpus: {out} is there ({info['documents']} documents)")
            return
    before = Path(target).read_bytes() if target and Path(target).is_file() else None
    code = corpus_demo(out, docs_per_source, cfg.seed, target)
    if code:
        raise SystemExit(code)
    if before is not None and Path(target).read_bytes() != before:
        _clear_target_stages(cfg)


def _clear_target_stages(cfg: Config) -> None:
    from climb_ray.artifacts import RunDir

    run = RunDir(cfg.run_dir)
    stale = [stage for stage in ("search", "export", "compare") if run.exists(stage)]
    for stage in stale:
        run.clear_stage(stage)
    if stale:
        LOG.info(f"the demo target changed: removed {', '.join(f'{cfg.run_dir}/{s}' for s in stale)} "
                 "(made with the old target); they run again")


def run(cfg: Config, *, until: str, redo: tuple[str, ...], whole: bool, extend: int = 0) -> int:
    """Run the stages up to `until` (whole: the demo or run command, every stage).
    extend: `climb-ray search --extend N` (one more iteration of N proxies)."""
    # `climb-ray export` of given weights needs no search; the whole pipeline runs it all the same
    skip = ("search",) if until == "export" and not whole and cfg.export.weights.strip() != "best" else ()
    if until in ORDER and ORDER.index(until) >= ORDER.index("search") and "search" not in skip:
        from climb_ray.evaluate import check_targets
        from climb_ray.tracking import check

        if not cfg.proxy.command:
            check_targets(cfg.target)  # before minutes of embedding, not after
        check(cfg.tracking)  # a tracker set but not installed, too
    report = run_pipeline(cfg, until=until, redo=redo, skip=skip, extend=extend)
    print_summary(report)
    return 0


def print_summary(report: PipelineReport) -> None:
    LOG.info(f"\nclimb-ray: finished in {report.seconds:.1f} s; run folder {report.run_url}")
    if report.ray:
        LOG.info(f"  ray       {report.ray}")
    LOG.info(f"  config    {report.run_url}/{CONFIG_YAML}")
    for result in report.results:
        state = "already done, skipped" if result.skipped else "done"
        LOG.info(f"  {result.stage:<9} {state}: {describe(result.stage, result.info)}")



def proxy(cfg: Config, *, weights: str, seed: int | None, redo: tuple[str, ...], json_out: str | None) -> int:
    """Run the stages up to tokens if needed, then train and score one proxy on `weights`."""
    import numpy as np

    from climb_ray.artifacts import RunDir
    from climb_ray.mixture import allocate, check_epochs, parse_weights
    from climb_ray.token_sample import check_sample
    from climb_ray.tokens import token_shares

    from climb_ray.evaluate import check_targets

    if not cfg.proxy.command:  # your trainer scores itself
        check_targets(cfg.target)
    report = run_pipeline(cfg, until="tokens", redo=redo)
    print_summary(report)
    run = RunDir(cfg.run_dir)
    meta = run.read_json(TOKENS_META)
    names = meta["clusters"]
    w = parse_weights(weights, names, token_shares(meta))
    p = cfg.proxy
    tokens = np.array([meta["tokens"][n] for n in names])
    check_epochs(allocate(w, p.sequences), p.context, tokens, names, cfg.search.max_epochs)
    check_sample(meta, p.tokens, cfg.search.max_epochs, "this proxy")  # it reads the proxies' sample
    from climb_ray.adapters.ray_proxy import run_proxy
    from climb_ray.adapters.ray_runtime import ensure_ray

    if not report.ray:
        ensure_ray(cfg.resources)
    from climb_ray.stages.search import absolute, with_absolute_paths

    seed = cfg.seed if seed is None else seed
    trial_dir = run.local_path("proxy", f"{time.strftime('%Y%m%d-%H%M%S')}-seed{seed}") if cfg.proxy.command else None
    result = run_proxy(with_absolute_paths(cfg), absolute(run.url("tokens")), list(w), seed, trial_dir)
    print_proxy(result, run.read_json(CLUSTERS))
    if json_out:
        Path(json_out).write_text(json.dumps(result, indent=2) + "\n")
        LOG.info(f"  result written to {json_out}")
    return 0


def ask(cfg: Config, *, n: int, redo: tuple[str, ...]) -> int:
    """Run the stages up to tokens if needed, then print the search's next mixtures, one JSON a line."""
    import contextlib

    from climb_ray.stages import asktell
    from climb_ray.artifacts import RunDir

    with contextlib.redirect_stdout(sys.stderr):  # stdout is the mixtures only (a refit's notice goes to stderr)
        print_summary(run_pipeline(cfg, until="tokens", redo=redo))
        mixtures, why = asktell.ask(cfg, RunDir(cfg.run_dir), n or 10**9)
    for mixture in mixtures:
        print(json.dumps(mixture), flush=True)  # data on stdout, not a log line: -q keeps it
    if why:
        print(f"climb-ray ask: no mixture: {why}", file=sys.stderr)
    return 0


def tell(cfg: Config, *, index: int, score: float | None) -> int:
    from climb_ray.stages import asktell
    from climb_ray.artifacts import RunDir

    done = asktell.tell(cfg, RunDir(cfg.run_dir), index, score)
    LOG.info(f"climb-ray tell: trial {index} {done['status']}; {done['pending']} trial(s) of this iteration still to tell")
    if done["finished"]:
        from climb_ray.stages.search import answer_line

        LOG.info(f"the search is finished: {answer_line(done['outputs'])} -> "
                 f"{cfg.run_dir}/{in_search(BEST_MIXTURE, asktell.OUT)}")
    return 0


def print_proxy(result: dict, clusters: dict) -> None:
    labels = {f"sc{s['id']:02d}": ", ".join(s["top_terms"][:5]) for s in clusters["super_clusters"]}
    if "command" in result:  # proxy.command: your trainer's score
        LOG.info(f"\nproxy.command: score {result['score']:.4f} (higher is better), seed {result['seed']}, "
                 f"{result['train_seconds']:.1f} s" + (f"; output in {result['trial_dir']}" if result["trial_dir"] else ""))
        for name, weight in result["weights"].items():
            LOG.info(f"  {name:<7} {weight:7.4f}  {labels.get(name, '')}")
        return
    LOG.info(f"\nproxy: score {result['score']:.4f} ({result['direction'].replace('_', ' ')}), seed {result['seed']}, "
             f"{result['parameters'] / 1e6:.2f}M parameters on {result['device']}")
    for t in result["targets"]:
        figure = (f"loss {t['loss']:.4f} over {t['documents']} documents" if t["kind"] == "text" else
                  ", ".join(f"{m} {t[m]:.3f}" for m in ("acc", "acc_norm") if m in t) + f" over {t['items']} items"
                  + (f" ({t['malformed']} malformed skipped)" if "malformed" in t else ""))  # a task: none
        LOG.info(f"  target  {t['name']}: {figure} (weight {t['weight']:g})")
    LOG.info(f"  trained {result['train_tokens']} tokens in {result['train_seconds']:.1f} s "
             f"({result['train_tokens_per_s']:.0f} tokens/s), last loss {result['train_loss_last']:.3f}; "
             f"scored in {result['score_seconds']:.1f} s")
    LOG.info("  cluster  weight  sequences  passes  top terms")
    for name, weight in result["weights"].items():
        LOG.info(f"  {name:<7} {weight:7.4f} {result['sequences'][name]:10d} {result['epochs'][name]:7.2f}  "
                 f"{labels.get(name, '')}")


def doremi(cfg: Config, *, redo: tuple[str, ...]) -> int:
    from climb_ray.stages.compare import doremi as run_doremi

    run, result = run_doremi(cfg, redo)
    info = result.info
    state = "already done, skipped" if result.skipped else "done"
    LOG.info(f"\nclimb-ray doremi: {state}: {info['steps']} steps per proxy, {info['tokens']} tokens in "
             f"{info['seconds']:.1f} s on {info['device']} -> {run.url('doremi', 'weights.json')}")
    for name, weight in sorted(info["weights"].items(), key=lambda kv: -kv[1]):
        LOG.info(f"  {name}  {weight:6.3f}")
    LOG.info(f"  export it: climb-ray export --weights {run.url('doremi', 'weights.json')}")
    return 0


def compare(cfg: Config, *, redo: tuple[str, ...]) -> int:
    from climb_ray.stages.compare import compare as run_compare

    result = run_compare(cfg, redo)
    LOG.info(f"\n{result['text']}\nwritten to {result['run']}/{COMPARE_TABLE} and "
             f"{posixpath.basename(COMPARE_RESULTS)}")
    return 0


def bench_search(cfg: Config, args) -> int:
    from climb_ray.bench_search import benchmark, format_table, write_json
    from climb_ray.config import ConfigError

    try:
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise ConfigError(f"--budgets {args.budgets!r}: must be comma-separated whole numbers") from None

    def progress(method, budget, result):
        LOG.info(f"  {method:<8} budget {budget:>4}: regret {result['regret_mean']:.4f} +- {result['regret_ci95']:.4f}"
                 f" (best seen {result['best_seen_regret_mean']:.4f})")

    try:
        report = benchmark(args.runs, args.target, mode=args.mode, budgets=budgets, seeds=args.seeds,
                           methods=[s.strip() for s in args.methods.split(",") if s.strip()],
                           weight_columns=args.weight_columns.split(",") if args.weight_columns else None,
                           search=cfg.search, predictor=cfg.predictor, noise=args.noise, progress=progress)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(str(err)) from None
    LOG.info(format_table(report))
    if args.json_out:
        write_json(report, args.json_out)
        LOG.info(f"results written to {args.json_out}")
    return 0
