"""The stages of a run, in order, each skipped when its `_DONE` marker says it is finished."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from climb_ray.artifacts import CONFIG_YAML, RunDir, StageResult, run_stage
from climb_ray.config import SECTIONS, STAGE_ORDER, Config, settings
from climb_ray.stages.cluster import ClusterResult, cluster_stage
from climb_ray.stages.corpus import CorpusResult, corpus_stage
from climb_ray.stages.embed import EmbedResult, embed_stage
from climb_ray.stages.search import SearchResult, search_stage
from climb_ray.stages.tokens import TokensResult, tokens_stage
from climb_ray.stages.search_plan import prepare_search, run_search_stage
from climb_ray.stages.export import ExportResult, export_stage
from climb_ray.config_io import to_yaml

ORDER = list(STAGE_ORDER)


@dataclass
class PipelineReport:
    run_url: str
    ray: str = ""  # which Ray was used
    results: list[StageResult] = field(default_factory=list)
    seconds: float = 0.0


RESULTS = {"corpus": CorpusResult, "embed": EmbedResult, "cluster": ClusterResult, "tokens": TokensResult,
           "search": SearchResult, "export": ExportResult}  # each stage's typed result


def describe(stage: str, info: dict) -> str:
    """A finished stage's summary (its _DONE marker's info) in one or a few lines."""
    import json

    return RESULTS[stage].from_json(info).describe() if stage in RESULTS else json.dumps(info)


STAGE_FUNCS = {"corpus": corpus_stage, "embed": embed_stage, "cluster": cluster_stage, "tokens": tokens_stage,
               "search": search_stage, "export": export_stage}
# proxy settings that change a proxy's score (not the resources it runs on)
PROXY_RESULT_FIELDS = [name for name, (_, stages) in settings().items()
                       if name.startswith("proxy.") and "search" in stages]
# settings (fields or sections) that only change how the search answers from its recorded trials: a change
# re-answers from them (seconds, no proxy trained) instead of asking for --redo search; part of DEPENDS["search"]
ANSWER_FIELDS = ([name for name, cls in SECTIONS.items() if getattr(cls, "REANSWER", False)]
                 + [name for name, (f, _) in settings().items() if f.metadata.get("reanswer")])


# sections recorded as one entry (their fields' values) by the stages of their STAGES, as markers always have
# recorded them; the fields of other sections are recorded one by one
WHOLE = ("corpus", "cluster", "tokens", "target", "predictor")


def _depends(stage: str) -> list[str]:
    """What `stage` records: the settings config.py says it depends on (sections of WHOLE as one entry)."""
    out = []
    for name, (_, stages) in settings().items():
        section = name.split(".")[0]
        if section in WHOLE and stage in SECTIONS[section].STAGES:
            out += [section] if section not in out else []
        elif stage in stages:
            out.append(name)
    return out


# the config values each stage's output depends on (a change means: rebuild it); sections or fields
DEPENDS = {stage: _depends(stage) for stage in ORDER}
# fields of a section recorded whole that the stage leaves out: guards, which stop a run or let it go on,
# never change its output (corpus.max_skip_share)
GUARDS = {name for name, (_, stages) in settings().items()
          if name.split(".")[0] in WHOLE and set(SECTIONS[name.split(".")[0]].STAGES) - set(stages)}


# fields recorded only where they change the output (a run folder made before them still matches otherwise):
# the static encoder's fit changes nothing for a transformer encoder
RECORDED_WHEN = {"embed.static_fit_docs": lambda cfg: cfg.embed.encoder == "static"}


def stage_depends(cfg: Config, stage: str) -> dict:
    out = {}
    for dotted in DEPENDS[stage]:
        if dotted in RECORDED_WHEN and not RECORDED_WHEN[dotted](cfg):
            continue
        value = cfg
        for part in dotted.split("."):
            value = getattr(value, part)
        if dataclasses.is_dataclass(value):
            value = {k: v for k, v in dataclasses.asdict(value).items() if f"{dotted}.{k}" not in GUARDS}
        out[dotted] = value
    return out


def run_pipeline(cfg: Config, *, until: str = "export", redo: tuple[str, ...] = (),
                 skip: tuple[str, ...] = (), extend: int = 0) -> PipelineReport:
    """Run every stage up to and including `until`, but those in `skip`.
    extend: proxies of one more search iteration once the recorded search is done (`climb-ray search --extend`)."""
    from climb_ray.adapters.ray_runtime import ensure_ray

    start = time.perf_counter()
    run = RunDir(cfg.run_dir)
    if "search" in ORDER[: ORDER.index(until) + 1] and "search" not in skip:  # the schedule the search runs to
        cfg = prepare_search(cfg, run, extend=extend, redo="search" in redo)
    run.write_text(CONFIG_YAML, to_yaml(cfg))
    if cfg.export.overwrite:
        redo = (*redo, "export")
    report = PipelineReport(run_url=run.url())
    if "export" in redo and run.is_done("export") and run.is_done("tokens") and (
            cfg.export.weights.strip() != "best" or run.is_done("search")):
        from climb_ray.stages.export import check_export

        report.ray = ensure_ray(cfg.resources)  # the check counts each cluster's tokens on Ray Data
        check_export(cfg, run)  # a bad mixture or budget is refused before the old export is removed
    for stage in ORDER[: ORDER.index(until) + 1]:
        if stage in skip:
            continue

        def work(stage=stage):  # Ray starts only when a stage really has work to do
            if not report.ray:
                report.ray = ensure_ray(cfg.resources)
            return STAGE_FUNCS[stage](cfg, run)

        if stage == "search":  # it may also re-answer (answer settings changed) or continue (a longer schedule)
            report.results.append(run_search_stage(cfg, run, stage_depends(cfg, stage), work, redo=stage in redo,
                                                   answer_fields=ANSWER_FIELDS))
        else:
            report.results.append(run_stage(run, stage, stage_depends(cfg, stage), work, redo=stage in redo))
    report.seconds = time.perf_counter() - start
    return report
