"""The stages of a run, in order, each skipped when its `_DONE` marker says it is finished.

Stages that later issues build are listed in NOT_BUILT; the pipeline says so instead of faking them.
"""

from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass, field

from climb_ray.artifacts import RunDir, StageResult, run_stage
from climb_ray.config import Config
from climb_ray.config_io import to_yaml
from climb_ray.corpus import SkipCounts, list_files

ORDER = ["corpus", "embed", "cluster", "tokens", "search", "export"]
NOT_BUILT = {"embed": 3, "cluster": 3, "tokens": 4, "search": 5, "export": 8, "serve": 6}


@dataclass
class PipelineReport:
    run_url: str
    ray: str = ""  # which Ray was used
    results: list[StageResult] = field(default_factory=list)
    not_built: list[str] = field(default_factory=list)
    seconds: float = 0.0


def corpus_stage(cfg: Config, run: RunDir) -> dict:
    """Read the whole corpus once: per-file counts in corpus/files.parquet, totals in stats.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from climb_ray.adapters.ray_data import scan_corpus

    files = list_files(cfg.corpus.paths, cfg.corpus.format)
    rows = scan_corpus(files, cfg.corpus)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    run.write_bytes("corpus/files.parquet", buffer.getvalue())
    skips = SkipCounts()
    for row in rows:
        skips.add(SkipCounts(**{k: row[f"skipped_{k}"] for k in dataclasses.asdict(skips)}))
    stats = {
        "files": len(rows),
        "documents": sum(r["documents"] for r in rows),
        "chars": sum(r["chars"] for r in rows),
        "skipped": skips.total,
        "skipped_by_reason": dataclasses.asdict(skips),
    }
    run.write_json("corpus/stats.json", stats)
    return stats


STAGE_FUNCS = {"corpus": corpus_stage}
# the config sections whose values each stage's output depends on (a change means: rebuild it)
DEPENDS = {"corpus": ["corpus"]}


def stage_depends(cfg: Config, stage: str) -> dict:
    return {section: dataclasses.asdict(getattr(cfg, section)) for section in DEPENDS[stage]}


def run_pipeline(cfg: Config, *, until: str = "export", redo: tuple[str, ...] = ()) -> PipelineReport:
    """Run every built stage up to and including `until`; list the ones not built yet."""
    from climb_ray.adapters.ray_runtime import ensure_ray

    start = time.perf_counter()
    run = RunDir(cfg.run_dir)
    run.write_text("config.yaml", to_yaml(cfg))
    report = PipelineReport(run_url=run.url())
    for stage in ORDER[: ORDER.index(until) + 1]:
        if stage in NOT_BUILT:
            report.not_built.append(stage)
            continue

        def work(stage=stage):  # Ray starts only when a stage really has work to do
            if not report.ray:
                report.ray = ensure_ray(cfg.resources)
            return STAGE_FUNCS[stage](cfg, run)

        report.results.append(run_stage(run, stage, stage_depends(cfg, stage), work, redo=stage in redo))
    report.seconds = time.perf_counter() - start
    return report
