"""`climb-ray`: the command line. Every command takes --config and `section.field=value` overrides."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from climb_ray import __version__
from climb_ray.artifacts import PREDICTOR, StageChangedError
from climb_ray.stages.asktell import AskTellError
from climb_ray.config import ConfigError
from climb_ray.corpus import CorpusError
from climb_ray.export import ExportError
from climb_ray.lease import RunLocked
from climb_ray.mixture import MixtureError
from climb_ray.search import SearchFailed
from climb_ray.served_model import NotServable

EXIT_BAD_INPUT = 2
PRESETS = ("demo", "paper")
USER_ERRORS = (ConfigError, CorpusError, StageChangedError, MixtureError, SearchFailed, NotServable, ExportError,
               RunLocked, AskTellError)

DESCRIPTION = """\
CLIMB data-mixture search on Ray: embed a corpus, cluster it into super-clusters, search
mixture weights with proxy LMs guided by a LightGBM predictor, serve the predictor over HTTP.

Every command reads one config: the defaults (the paper's settings), then --config (a YAML
file, or a preset: demo, paper), then `section.field=value` overrides, e.g.
  climb-ray run --config my.yaml corpus.paths=[data/a.jsonl] cluster.k_init=200
Ray is started locally on demand, or joined when RAY_ADDRESS is set (as `ray job submit` does).
Exit codes: 0 done, 2 bad input (config, corpus, mixture, changed settings, a held run folder), 130 interrupted."""


def _config_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--config", metavar="YAML", help="config file, or a preset name: demo, paper")
    loud = parent.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1, default=0,
                      help="also Ray's own progress (Ray Data operators, Tune trial tables) and debug lines")
    loud.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                      help="warnings and errors only")
    parent.add_argument("overrides", nargs="*", metavar="section.field=value",
                        help="config overrides, applied after --config (e.g. cluster.k_init=200)")
    return parent


def _stage_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, parents=[_config_options()])
    parent.add_argument("--redo", action="append", default=[], metavar="STAGE",
                        help="rebuild this stage even if its _DONE marker exists (repeatable)")
    return parent


def _count(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: need a whole number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="climb-ray", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"climb-ray {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stage = _stage_options()
    demo = sub.add_parser("demo", parents=[stage], help="build the demo corpus and run the pipeline on it",
                          description="Build the demo corpus (real text from installed packages) unless it "
                          "is there, then run every stage on it with the demo preset.")
    demo.add_argument("--docs-per-source", type=int, default=800, help="documents per demo source (default 800)")
    demo.add_argument("--serve", action="store_true", help="then serve the predictor over HTTP until Ctrl-C")
    sub.add_parser("run", parents=[stage], help="run all stages on your corpus (finished stages are skipped)",
                   description="Run corpus -> embed -> cluster -> tokens -> search -> export; a stage "
                   "whose _DONE marker exists is skipped, so a killed run resumes with the same command.")
    _corpus_commands(sub)
    for name, what in [("embed", "embed every document with the encoder (Ray Data)"),
                       ("cluster", "k-means, quality pruning and merging into super-clusters"),
                       ("tokens", "train the tokenizer and write per-super-cluster token shards"),
                       ("search", "the bootstrapped mixture search with proxy LMs (Ray Tune)")]:
        sub.add_parser(name, parents=[stage], help=what,
                       description=f"{what[0].upper() + what[1:]}; earlier stages run first when not done.")
    sub.choices["search"].description += (
        " A finished search continues when search.schedule grows (only the new proxies train), and "
        "re-answers from its recorded trials when only search.answer, search.answer_top_k, predictor.* or "
        "target.weights change.")
    sub.choices["search"].add_argument("--extend", type=int, default=0, metavar="N",
                                       help="add one iteration of N proxies to the run's finished search (its "
                                       "recorded schedule), continuing from it; a killed extension resumes "
                                       "with the same command")
    export = sub.add_parser("export", parents=[stage], help="write the chosen mixture as a training dataset",
                            description="Sample documents from each super-cluster in proportion to the mixture, "
                            "up to export.token_budget tokens (a cluster repeated at most export.max_epochs "
                            "times), shuffle them across clusters with export.seed and write <run>/export/: "
                            "part-*.parquet (text, cluster, doc_id), tokens-*.bin/.idx with "
                            "export.write_token_ids=true, and manifest.json; --format hf adds a dataset card "
                            "(README.md: a Hugging Face dataset folder), --format megatron writes instead one "
                            "Megatron-Core indexed dataset per super-cluster (sc*.bin/.idx, every document once) and "
                            "the mixture as a blend (blend.json, data_path.txt). Earlier stages run first when not done.")
    export.add_argument("--weights", default=None, help="the mixture: best (the search's answer, default), uniform, "
                        "prior, 0.5,0.3,..., sc00=0.7,sc03=0.3, JSON, or a .json file (as export.weights)")
    export.add_argument("--format", default=None, choices=["parquet", "hf", "megatron"],
                        help="what to write (as export.format; default parquet)")
    export.add_argument("--overwrite", action="store_true", help="replace an export made with other settings")
    proxy = sub.add_parser("proxy", parents=[stage], help="train and score one proxy LM on one mixture",
                           description="Train a proxy LM on one mixture of the super-clusters and score it "
                           "on target.paths (earlier stages run first when not done). Weights: uniform, "
                           "prior (token shares), 0.5,0.3,... (one per super-cluster, in order), "
                           "sc00=0.7,sc03=0.3 (the others 0), or the same as JSON.",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    proxy.add_argument("--weights", required=True, help="the mixture (see above)")
    proxy.add_argument("--seed", type=int, default=None, help="seed of the proxy (default: the config's seed)")
    proxy.add_argument("--json", dest="json_out", metavar="PATH", help="also write the result as JSON here")
    ask = sub.add_parser("ask", parents=[stage], help="the next mixtures of a search driven by files",
                         description="Ask/tell, for a search loop outside Ray: print the next mixtures to "
                         "train (one JSON object a line: index, seed, weights, blend), each also written to "
                         "<run>/asktell/trials/<index>.json; train them your way and report each score with "
                         "`climb-ray tell`. The search state is <run>/asktell/state.json; the answer is written "
                         "to <run>/asktell/ when the last score is told. Earlier stages run first when not done.")
    ask.add_argument("--n", type=_count, default=0, help="mixtures at most (default: all the iteration has left)")
    tell = sub.add_parser("tell", parents=[_config_options()], help="record the score of an asked mixture",
                          description="Record trial INDEX's score (higher is better) in the search `climb-ray "
                          "ask` drives, or --failed; after the last one the answer goes to <run>/asktell/.")
    tell.add_argument("--index", type=int, required=True, help="the trial's index, as ask printed it")
    tell.add_argument("--score", type=float, help="its score, higher is better")
    tell.add_argument("--failed", action="store_true", help="the trial failed: no score")
    sub.add_parser("doremi", parents=[stage], help="DoReMi's domain weights for the super-clusters (a baseline)",
                   description="DoReMi (Xie et al. 2023): train a reference proxy on doremi.reference, then a "
                   "proxy with Group DRO whose domain weights follow each cluster's excess loss over the "
                   "reference; the answer (the weights averaged over training) goes to <run>/doremi/weights.json. "
                   "Each proxy trains doremi.steps steps (0: the two together as many tokens as the search). "
                   "Earlier stages run first when not done; export it with export.weights=<run>/doremi/weights.json.")
    sub.add_parser("compare", parents=[stage], help="CLIMB, RegMix, random and DoReMi side by side on the target",
                   description="Run each method of compare.methods on the run's clusters, target and proxy "
                   "budget, once per search seed (compare.search_seeds; seed 0 is the run's own search, reused), "
                   "then train compare.seeds evaluation proxies on each answer and on compare.references, and "
                   "print their target scores with 95%% intervals (across search seeds when there are several) "
                   "and the proxy compute each method spent; written to <run>/compare/table.md and "
                   "results.json. Finished searches and evaluation proxies are kept: rerun to resume.")
    bench = sub.add_parser("bench-search", parents=[_config_options()],
                           help="compare search methods on a pool of measured runs (e.g. RegMix's)",
                           description="Pool benchmark: each method may evaluate only rows of the CSV files "
                           "(an evaluation returns the row's measured --target) and answers with a row; prints "
                           "the mean regret (answer minus the pool's best) and best-seen regret with 95%% "
                           "intervals over seeds. With --noise SD each evaluation adds seeded Gaussian noise "
                           "(fresh for a repeated row, which counts against the budget); regret is judged on the "
                           "noiseless value. The search.* and predictor.* settings apply (--config paper: the "
                           "paper's).")
    bench.add_argument("--runs", action="append", required=True, metavar="CSV", help="a CSV of runs (repeatable)")
    bench.add_argument("--target", required=True, help="the column to optimise, e.g. loss_hackernews")
    bench.add_argument("--mode", choices=["min", "max"], default="min", help="minimise (losses) or maximise")
    bench.add_argument("--budgets", default="32,64,112", help="evaluations per run, comma-separated")
    bench.add_argument("--seeds", type=int, default=50, help="runs per method and budget")
    bench.add_argument("--methods", default="climb,regmix,random,optuna", help="comma-separated")
    bench.add_argument("--noise", type=float, default=0.0, metavar="SD",
                       help="standard deviation of the Gaussian noise added to each evaluation (default 0)")
    bench.add_argument("--weight-columns", default=None,
                       help="comma-separated weight columns (default: all but index, loss_*, score_*)")
    bench.add_argument("--json", dest="json_out", metavar="PATH", help="also write the results as JSON")
    serve = sub.add_parser("serve", parents=[_config_options()], help="serve the fitted predictor over HTTP (Ray Serve)",
                           description="Serve the predictor of run_dir over HTTP with Ray Serve, bound to "
                           "serve.host:serve.port (127.0.0.1:8000 by default): a web page at /, the API under /v1/, "
                           "its OpenAPI docs at /docs. With a bearer token in $CLIMB_API_TOKEN (serve.token_env) "
                           "every /v1/ call needs it. On a local Ray it serves until Ctrl-C; joined to a cluster "
                           "(RAY_ADDRESS) it deploys and returns, the app staying up on the cluster; running it "
                           "again there (new --predictor, --version, or a changed predictor file) reloads the "
                           "running replicas in place. serve.watch_s=N reloads a changed predictor file on its own.")
    serve.add_argument("--predictor", default=PREDICTOR,
                       help=f"predictor file inside the run folder (default {PREDICTOR})")
    serve.add_argument("--version", dest="label", default="",
                       help="version label reported by the API (default: a hash of the predictor file)")
    serve.add_argument("--detach", action="store_true", help="deploy and return, also on a local Ray "
                       "(the app stops with that Ray)")
    serve.add_argument("--no-token", dest="drop_token", action="store_true",
                       help="remove the bearer token of a running app (a redeploy otherwise keeps it)")
    serve.add_argument("--insecure", action="store_true", help="allow a serve.host other machines can reach "
                       "without a bearer token (refused otherwise)")
    serve.add_argument("--stop", action="store_true", help="delete the predictor's Serve application from the "
                       "cluster at RAY_ADDRESS (other applications and Serve keep running) and return")
    sub.add_parser("config", parents=[_config_options()], help="print the resolved config as YAML",
                   description="Print the config after defaults, --config and overrides, validated.")
    return parser


def _corpus_commands(sub) -> None:
    corpus = sub.add_parser("corpus", help="build the demo corpus, or read and count a corpus",
                            description="Corpus tools.")
    csub = corpus.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    demo = csub.add_parser("demo", help="write the demo corpus as JSONL (id, text, source)",
                           description="Write the demo corpus: real text from five kinds of sources "
                           "shipped in packages (the `demo` extra), deterministic for a seed.")
    demo.add_argument("--out", default="data/demo_corpus.jsonl", help="output JSONL path")
    demo.add_argument("--docs-per-source", type=int, default=800, help="documents per source at most")
    demo.add_argument("--seed", type=int, default=0, help="seed for the choice and order of documents")
    demo.add_argument("--target-out", default="data/demo_target.jsonl",
                      help="also write the demo's target here: 200 held-out documents, 70%% Wikipedia and 30%% "
                      "Python docstrings ('' = none)")
    csub.add_parser("scan", parents=[_stage_options()], help="read the corpus through and count documents "
                    "and skipped rows (the pipeline's first stage)",
                    description="Run the corpus stage: every file read once on Ray Data; counts written "
                    "to <run>/corpus/.")


def load(args):
    from climb_ray.config_io import load_config

    path = args.config
    if path in PRESETS:
        path = Path(str(resources.files("climb_ray") / "configs" / f"{path}.yaml"))
    return load_config(path, args.overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from climb_ray import log

    log.setup(getattr(args, "verbosity", 0))
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print("climb-ray: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as err:  # user mistakes get one line; anything else is a bug and keeps its traceback
        user = _user_error(err)
        if user is None:
            raise
        print(f"climb-ray: error: {user}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _user_error(err: BaseException) -> BaseException | None:
    """Find a user-facing error in the chain, also when Ray wrapped it in a task error."""
    seen = 0
    while err is not None and seen < 20:
        cause = getattr(err, "cause", None)
        if isinstance(cause, BaseException):
            err = cause
            continue
        if isinstance(err, USER_ERRORS):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def _dispatch(args) -> int:
    from climb_ray import commands, serve_commands

    if args.command == "corpus" and args.corpus_command == "demo":
        return commands.corpus_demo(args.out, args.docs_per_source, args.seed, args.target_out or None)
    if args.command == "demo" and args.config is None:
        args.config = "demo"
    cfg = load(args)
    if args.command == "export":
        cfg.export.weights = args.weights or cfg.export.weights
        cfg.export.format = args.format or cfg.export.format
        cfg.export.overwrite = cfg.export.overwrite or args.overwrite
    if args.command == "config":
        from climb_ray.config_io import to_yaml

        print(to_yaml(cfg), end="")
        return 0
    if args.command == "serve" and args.stop:
        return serve_commands.stop_serving()
    if args.command == "serve":
        return serve_commands.serve(cfg, predictor=args.predictor, version=args.label, detach=args.detach,
                                    drop_token=args.drop_token, insecure=args.insecure)
    if args.command == "bench-search":
        return commands.bench_search(cfg, args)
    from climb_ray.lease import RunLease

    with RunLease(cfg.run_dir, f"climb-ray {args.command}"):  # one writer per run folder
        code = _write(args, cfg)
    if code == 0 and args.command == "demo":
        if args.serve:
            return serve_commands.serve(cfg, predictor=PREDICTOR, version="", detach=False)
        serve_commands.print_serve_hint(cfg)
    return code


def _write(args, cfg) -> int:
    """The commands that write the run folder."""
    from climb_ray import commands

    if args.command == "proxy":
        return commands.proxy(cfg, weights=args.weights, seed=args.seed, redo=tuple(args.redo),
                              json_out=args.json_out)
    if args.command == "ask":
        return commands.ask(cfg, n=args.n, redo=tuple(args.redo))
    if args.command == "tell":
        if (args.score is None) != args.failed:
            raise AskTellError("tell: give a score or --failed, not both or neither")
        return commands.tell(cfg, index=args.index, score=args.score)
    if args.command in ("doremi", "compare"):
        return getattr(commands, args.command)(cfg, redo=tuple(args.redo))
    if args.command == "demo":
        commands.ensure_demo_corpus(cfg, args.docs_per_source)
    until = {"demo": "export", "run": "export", "corpus": "corpus"}.get(args.command, args.command)
    return commands.run(cfg, until=until, redo=tuple(args.redo), whole=args.command in ("demo", "run"),
                        extend=getattr(args, "extend", 0))


if __name__ == "__main__":
    sys.exit(main())
