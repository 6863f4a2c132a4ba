"""What each CLI command does, and the summaries it prints (cli.py only parses arguments)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from climb_ray import log
from climb_ray.config import Config
from climb_ray.stages.pipeline import ORDER, PipelineReport, describe, run_pipeline
from climb_ray.artifacts import CLUSTERS, TOKENS_META

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
    extend: `climb-ray search --extend N` (one more generation of N proxies)."""
    if until in ORDER and ORDER.index(until) >= ORDER.index("search") and not cfg.proxy.command:
        from climb_ray.evaluate import check_targets

        check_targets(cfg.target)  # before minutes of embedding, not after
    # `climb-ray export` of given weights needs no search; the whole pipeline runs it all the same
    skip = ("search",) if until == "export" and not whole and cfg.export.weights.strip() != "best" else ()
    report = run_pipeline(cfg, until=until, redo=redo, skip=skip, extend=extend)
    print_summary(report)
    return 0


def print_summary(report: PipelineReport) -> None:
    LOG.info(f"\nclimb-ray: finished in {report.seconds:.1f} s; run folder {report.run_url}")
    if report.ray:
        LOG.info(f"  ray       {report.ray}")
    LOG.info(f"  config    {report.run_url}/config.yaml")
    for result in report.results:
        state = "already done, skipped" if result.skipped else "done"
        LOG.info(f"  {result.stage:<9} {state}: {describe(result.stage, result.info)}")



def proxy(cfg: Config, *, weights: str, seed: int | None, redo: tuple[str, ...], json_out: str | None) -> int:
    """Run the stages up to tokens if needed, then train and score one proxy on `weights`."""
    import numpy as np

    from climb_ray.artifacts import RunDir
    from climb_ray.mixture import allocate, check_epochs, parse_weights
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

        LOG.info(f"the search is finished: {answer_line(done['outputs'])} -> {cfg.run_dir}/asktell/best_mixture.json")
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
                  f"acc {t['acc']:.3f}, acc_norm {t['acc_norm']:.3f} over {t['items']} items "
                  f"({t['malformed']} malformed skipped)")
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
    LOG.info(f"\n{result['text']}\nwritten to {result['run']}/compare/table.md and results.json")
    return 0


def bench_search(cfg: Config, args) -> int:
    from climb_ray.bench_search import benchmark, format_table, write_json
    from climb_ray.config import ConfigError

    try:
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise ConfigError(f"--budgets {args.budgets!r}: must be comma-separated whole numbers") from None

    def progress(strategy, budget, result):
        LOG.info(f"  {strategy:<8} budget {budget:>4}: regret {result['regret_mean']:.4f} +- {result['regret_ci95']:.4f}"
                 f" (best seen {result['best_seen_regret_mean']:.4f})")

    try:
        report = benchmark(args.runs, args.target, mode=args.mode, budgets=budgets, seeds=args.seeds,
                           strategies=[s.strip() for s in args.strategies.split(",") if s.strip()],
                           weight_columns=args.weight_columns.split(",") if args.weight_columns else None,
                           search=cfg.search, predictor=cfg.predictor, noise=args.noise, progress=progress)
    except (ValueError, FileNotFoundError) as err:
        raise ConfigError(str(err)) from None
    LOG.info(format_table(report))
    if args.json_out:
        write_json(report, args.json_out)
        LOG.info(f"results written to {args.json_out}")
    return 0


def serve(cfg: Config, *, predictor: str, version: str, detach: bool, drop_token: bool = False,
          insecure: bool = False) -> int:
    """Serve run_dir's predictor with Ray Serve; on a Ray we started, until Ctrl-C (hot-reloading
    the predictor file every serve.watch_s seconds when set)."""
    import os

    from climb_ray.adapters.ray_serve import is_loopback
    from climb_ray.config import ConfigError
    from climb_ray.served_model import ServedModel

    s = cfg.serve
    if not is_loopback(s.host) and not os.environ.get(s.token_env) and not insecure:
        raise ConfigError(f"serve.host={s.host} is reachable from other machines and ${s.token_env} is not set: "
                          f"set a bearer token in ${s.token_env}, or pass --insecure to serve without one")
    model = ServedModel.load(cfg.run_dir, predictor, version=version)  # a missing search fails here, before Ray
    joined = bool(os.environ.get("RAY_ADDRESS", "").strip())
    if not joined:
        _check_port_free(s.host, s.port)
    from climb_ray.adapters.ray_runtime import ensure_ray
    from climb_ray.adapters.ray_serve import DIRECT_INGRESS_ENV, direct_urls, start, user_config

    if s.direct_ingress and not joined:  # read where Serve's controller and replicas start: our new Ray's processes
        os.environ[DIRECT_INGRESS_ENV] = "1"
    LOG.info(f"climb-ray serve: {ensure_ray(cfg.resources)}")

    def deploy() -> str:
        config = user_config(cfg.run_dir, predictor=predictor, version=version, max_batch=s.max_batch,
                             max_body_bytes=s.max_body_bytes, token_env=s.token_env, drop_token=drop_token,
                             allowed_hosts=s.allowed_hosts)
        return start(config, host=s.host, port=s.port, num_replicas=s.num_replicas, num_cpus=s.cpus_per_replica,
                     route_prefix=s.route_prefix)

    url = deploy()
    print_serving(url, model, token=bool(os.environ.get(s.token_env)), token_env=s.token_env)
    direct = direct_urls(s.host)
    for i, address in enumerate(direct):
        LOG.info(f"  direct        {address}/   (replica {i + 1} of {len(direct)} answering itself: no proxy hop)")
    if s.direct_ingress and not direct:
        LOG.info(f"serve.direct_ingress: this Ray's Serve runs without direct ingress (it is set where Serve starts: "
                 f"{DIRECT_INGRESS_ENV}=1 in the environment of `ray start`); serving through the proxy only")
    if joined or detach:
        LOG.info("deployed; it keeps serving on the cluster (stop it with: climb-ray serve --stop, which removes this "
                 "application only)")
        return 0
    watching = s.watch_s > 0 and not version
    LOG.info("serving until Ctrl-C" + (f"; checking {predictor} for a new fit every {s.watch_s:g} s" if watching else ""))
    _serve_until_interrupted(cfg, predictor, deploy, model.info["version"] if watching else None)
    return 0


def stop_serving() -> int:
    """Delete our Serve application from the cluster at RAY_ADDRESS; Serve and other apps keep running."""
    import os

    from climb_ray.config import ConfigError

    if not os.environ.get("RAY_ADDRESS", "").strip():
        raise ConfigError("serve --stop removes the predictor from a cluster: set RAY_ADDRESS to it (a local "
                          "`climb-ray serve` stops with Ctrl-C)")
    from climb_ray.adapters.ray_runtime import ensure_ray
    from climb_ray.adapters.ray_serve import APP_NAME, stop
    from climb_ray.config import ResourcesConfig

    LOG.info(f"climb-ray serve --stop: {ensure_ray(ResourcesConfig())}")
    if stop():
        LOG.info(f"deleted the Serve application {APP_NAME!r}; other applications and Serve itself keep running")
    else:
        LOG.info(f"no Serve application {APP_NAME!r} runs there: nothing to stop")
    return 0


def _serve_until_interrupted(cfg: Config, predictor: str, deploy, seen: str | None) -> None:
    """Sleep until Ctrl-C; with `seen` (the served file's hash), redeploy when the file changes."""
    import signal

    from climb_ray.adapters.ray_runtime import shutdown

    def stop_on(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C and a service manager's SIGTERM stop the server, also where SIGINT came in ignored (a shell
    # starts background jobs that way, and Python then raises no KeyboardInterrupt)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_on)
    try:
        watch(cfg, predictor, deploy, seen)
    except KeyboardInterrupt:  # only a Ray this process started gets here: stopping it stops Serve at once
        LOG.info("\nstopping the server")
        shutdown()


def watch(cfg: Config, predictor: str, deploy, seen: str | None) -> None:
    """Sleep; with `seen`, redeploy each time the predictor file's hash changes. A failed redeploy is
    one line and the server goes on with the version it has; the next check tries again."""
    import time

    failed = None
    while True:
        time.sleep(cfg.serve.watch_s if seen else 3600)
        fresh = _predictor_version(cfg.run_dir, predictor) if seen else None
        if not fresh or fresh == seen:
            continue
        try:
            deploy()  # the file's hash is in user_config: the replicas reconfigure
        except Exception as err:  # a transient Serve error or a broken file: keep serving, retry next check
            if fresh != failed:
                LOG.info(f"could not reload the predictor (version {fresh}): {type(err).__name__}: {err}; still "
                         f"serving {seen}, trying again every {cfg.serve.watch_s:g} s")
                failed = fresh
            continue
        seen, failed = fresh, None
        LOG.info(f"reloaded the predictor: version {fresh}")


def print_serving(url: str, model, *, token: bool, token_env: str) -> None:
    info = model.info
    quality = f"held-out Spearman {info['spearman']:.3f}" if info["spearman"] is not None else "no held-out figures"
    auth = f' -H "Authorization: Bearer ${token_env}"' if token else ""
    example = json.dumps({"weights": model.as_dict(model.prior), "normalize": True})
    LOG.info(f"\npredictor {info['version']} ({info['trials']} trials, {quality}) served at {url}/")
    LOG.info(f"  web page      {url}/")
    LOG.info(f"  API docs      {url}/docs")
    LOG.info(f"  bearer token  {'required: $' + token_env if token else 'none (set $' + token_env + ' to require one)'}")
    LOG.info(f"  try           curl -s{auth} -X POST {url}/v1/predict -H 'Content-Type: application/json' "
             f"-d '{example}'")
    LOG.info(f"                curl -s{auth} '{url}/v1/best?k=3'")


def _predictor_version(run_dir: str, predictor: str) -> str | None:
    import hashlib

    from climb_ray.artifacts import RunDir

    run = RunDir(run_dir)
    try:
        return hashlib.sha256(run.read_bytes(predictor)).hexdigest()[:12]
    except (FileNotFoundError, OSError):
        return None


def _check_port_free(host: str, port: int) -> None:
    import socket

    from climb_ray.config import ConfigError

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as err:
            raise ConfigError(f"serve.host={host} serve.port={port}: cannot listen there ({err.strerror}); "
                              "choose another, e.g. serve.port=8001") from None


def print_serve_hint(cfg: Config) -> None:
    """How to explore the demo's predictor: the serve command, the URL and a curl line."""
    import os

    from climb_ray.artifacts import RunDir

    run = RunDir(cfg.run_dir)
    names = run.read_json(TOKENS_META)["clusters"][:2] if run.exists(TOKENS_META) else ["sc00", "sc01"]
    host = f"[{cfg.serve.host}]" if ":" in cfg.serve.host else cfg.serve.host
    url = f"http://{host}:{cfg.serve.port}{cfg.serve.route_prefix.rstrip('/')}"
    body = json.dumps({"weights": {n: round(1 / len(names), 4) for n in names}})
    auth = f' -H "Authorization: Bearer ${cfg.serve.token_env}"' if os.environ.get(cfg.serve.token_env) else ""
    LOG.info(f"\nexplore the predictor: climb-ray serve --config demo   (or: make serve), then open {url}/ or\n"
             f"  curl -s{auth} -X POST {url}/v1/predict -H 'Content-Type: application/json' -d '{body}'")
