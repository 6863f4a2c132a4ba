"""What each CLI command does, and the summaries it prints (cli.py only parses arguments)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from climb_ray.config import Config
from climb_ray.pipeline import NOT_BUILT, PipelineReport, run_pipeline

EXIT_NOT_BUILT = 3
DEMO_EXTRA_HINT = "install the demo extra: pip install 'climb-ray[demo]' (make demo does)"


def corpus_demo(out: str, docs_per_source: int, seed: int) -> int:
    from climb_ray.democorpus import build_demo_corpus

    if docs_per_source < 1:
        from climb_ray.config import ConfigError

        raise ConfigError(f"--docs-per-source={docs_per_source}: must be at least 1")
    print(f"building the demo corpus ({docs_per_source} documents per source at most, seed {seed})...")
    try:
        info = build_demo_corpus(out, docs_per_source=docs_per_source, seed=seed)
    except ImportError as err:
        print(f"climb-ray: error: a demo source package is missing ({err.name}); {DEMO_EXTRA_HINT}",
              file=sys.stderr)
        return 2
    Path(f"{out}.meta.json").write_text(json.dumps(info, indent=2) + "\n")
    per_source = ", ".join(f"{k} {v}" for k, v in info["per_source"].items())
    print(f"wrote {info['documents']} documents to {out} ({per_source})")
    return 0


def ensure_demo_corpus(cfg: Config, docs_per_source: int) -> None:
    """Build the demo corpus at corpus.paths[0] unless it is there with the same settings."""
    out = cfg.corpus.paths[0]
    meta = Path(f"{out}.meta.json")
    if Path(out).is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        if (info.get("seed"), info.get("docs_per_source")) == (cfg.seed, docs_per_source):
            print(f"demo corpus: {out} is there ({info['documents']} documents)")
            return
    code = corpus_demo(out, docs_per_source, cfg.seed)
    if code:
        raise SystemExit(code)


def not_built(stage: str) -> int:
    print(f"climb-ray: the {stage} stage is not built yet (issue #{NOT_BUILT[stage]})", file=sys.stderr)
    return EXIT_NOT_BUILT


def run(cfg: Config, *, until: str, redo: tuple[str, ...], whole: bool) -> int:
    """Run the stages up to `until`. A stage command (whole=False) for a stage not built yet exits 3;
    the whole pipeline (demo, run) succeeds with the stages built so far, and lists the others."""
    report = run_pipeline(cfg, until=until, redo=redo)
    print_summary(report)
    return EXIT_NOT_BUILT if not whole and until in report.not_built else 0


def print_summary(report: PipelineReport) -> None:
    print(f"\nclimb-ray: finished in {report.seconds:.1f} s; run folder {report.run_url}")
    if report.ray:
        print(f"  ray       {report.ray}")
    print(f"  config    {report.run_url}/config.yaml")
    for result in report.results:
        state = "already done, skipped" if result.skipped else "done"
        print(f"  {result.stage:<9} {state}: {_describe(result.stage, result.info)}")
    for stage in report.not_built:
        print(f"  {stage:<9} not built yet (issue #{NOT_BUILT[stage]})")


def _describe(stage: str, info: dict) -> str:
    if stage == "corpus":
        reasons = ", ".join(f"{k} {v}" for k, v in info["skipped_by_reason"].items() if v) or "none"
        return (f"{info['documents']} documents in {info['files']} file(s); {info['skipped']} rows "
                f"skipped ({reasons}) -> corpus/stats.json, corpus/files.parquet")
    if stage == "embed":
        return (f"{info['documents']} documents embedded with {info['model']} ({info['chunks']} chunk(s), "
                f"{info['chunks_reused']} reused) -> embed/")
    if stage == "cluster":
        return (f"{info['super_clusters']} super-clusters from k={info['k_init']} "
                f"({info['clusters_pruned']} clusters, {info['documents_pruned']} documents pruned) -> "
                f"cluster/clusters.json, clusters.png: {', '.join(info['names'])}")
    return json.dumps(info)
