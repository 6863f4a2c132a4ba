"""The run folder: layout, atomic writes and `_DONE` stage markers, on any fsspec filesystem.

A stage writes its files (each atomically: temp name, then rename), then a `_DONE` marker holding
a summary and the config values it depended on. On rerun a stage with a marker is skipped, unless
those config values changed: then the rerun stops with an error instead of mixing old and new.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import time
import uuid
from dataclasses import dataclass

import fsspec

from climb_ray import log

LOG = log.get(__name__)

# The run folder's well-known files, named once (docs/run-folder.md describes every one).
CONFIG_YAML = "config.yaml"  # the fully resolved config of the last command
CORPUS_FILES = "corpus/files.parquet"
CORPUS_STATS = "corpus/stats.json"
CORPUS_LABELS = "corpus/labels.json"
CENTROIDS = "cluster/centroids.npy"
ASSIGNMENTS = "cluster/assignments"  # a folder per embed chunk
EMBED = "embed"  # a folder per chunk of the corpus (CHUNK)
CLUSTERS = "cluster/clusters.json"
CLUSTERS_PNG = "cluster/clusters.png"
CLUSTERS_MAP_PNG = "cluster/map.png"
DENDROGRAM_PNG = "cluster/dendrogram.png"
TOKENIZER = "tokens/tokenizer.json"
TOKENS_META = "tokens/meta.json"
TRIALS = "search/trials.parquet"
PREDICTOR = "search/predictor.txt"
PREDICTOR_SIDECAR = "search/predictor.json"
BEST_MIXTURE = "search/best_mixture.json"
MANIFEST = "export/manifest.json"
EXPORT_CARD = "export/README.md"  # the dataset card of an hf export
BLEND = "export/blend.json"  # a megatron export's blend: data path, train tokens, dtype, tokenizer
DATA_PATH = "export/data_path.txt"  # the same blend as Megatron's --data-path arguments
EXPORT_TOKENIZER = "export/tokenizer"  # the run's tokenizer for AutoTokenizer.from_pretrained (megatron export)
COMPARE_RESULTS = "compare/results.json"
COMPARE_TABLE = "compare/table.md"
COMPARE_TABLE_PNG = "compare/table.png"
DONE = "_DONE"
CHUNK = "chunk-{:05d}"  # the folder of the corpus's chunk i, under embed/, cluster/assignments/, tokens/.../chunks/
STARTED = "_STARTED"  # written before a stage's work: a resumed stage must have the same settings
SUCCESS = "_SUCCESS"  # a finished chunk
MARKERS = (DONE, SUCCESS)  # a stage's and a chunk's "finished" markers


def in_search(rel: str, out: str = "search") -> str:
    """A search output (TRIALS, BEST_MIXTURE, ...) in the search folder `out` (compare/<method>/seed-<n>, asktell)."""
    return posixpath.join(out, posixpath.relpath(rel, "search"))


class StageChangedError(RuntimeError):
    """A finished stage was made with other config values than the ones given now."""


@dataclass
class Summary:
    """A stage's typed result (stages/<stage>.py: CorpusResult, ...), kept as JSON in its _DONE marker.
    Every field has a default, so a marker written before a field existed still reads."""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, info: dict):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in info.items() if k in names})

    def describe(self) -> str:
        """The summary in one or a few lines, as `climb-ray` prints it."""
        raise NotImplementedError


@dataclass
class StageResult:
    stage: str
    skipped: bool  # True when the stage was already done and was not run again
    info: dict  # the stage's summary, as written into its _DONE marker (Summary.to_json)


class RunDir:
    """A run folder at a local path or URI (file://, s3://, gs://, memory://...)."""

    def __init__(self, uri: str):
        self.uri = str(uri)
        self.fs, self.root = fsspec.core.url_to_fs(self.uri)
        self.fs.makedirs(self.root, exist_ok=True)

    def path(self, *parts: str) -> str:
        """Filesystem path (no protocol) of an entry, for calls on self.fs."""
        return posixpath.join(self.root, *parts) if parts else self.root

    def url(self, *parts: str) -> str:
        """Address a user (or pyarrow / Ray Data) can open: a local path or protocol://path."""
        path = self.path(*parts)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return path if protocol in ("file", "local") else f"{protocol}://{path}"

    def local_path(self, *parts: str) -> str | None:
        """The entry's local path, or None when the run folder is not local (a trainer writes there)."""
        return self.url(*parts) if "://" not in self.url() else None

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def write_bytes(self, rel: str, data: bytes) -> str:
        """Write `data` to `rel` atomically: readers see the old file or the whole new one."""
        final = self.path(rel)
        self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        temp = f"{final}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(temp, "wb") as out:
            out.write(data)
        self.fs.mv(temp, final)
        return final

    def write_text(self, rel: str, text: str) -> str:
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_json(self, rel: str, obj) -> str:
        return self.write_text(rel, json.dumps(obj, indent=2, sort_keys=True) + "\n")

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open(self.path(rel), "rb") as src:
            return src.read()

    def read_json(self, rel: str):
        return json.loads(self.read_bytes(rel).decode("utf-8"))

    def listdir(self, rel: str) -> list[str]:
        """Names (not paths) inside a folder of the run, sorted; [] when it does not exist."""
        if not self.exists(rel):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(self.path(rel), detail=False))

    def is_done(self, stage: str) -> bool:
        return self.exists(stage, DONE)

    def mark_done(self, stage: str, info: dict | Summary, depends: dict, seconds: float | None = None) -> None:
        marker = {"stage": stage, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "depends": depends,
                  "info": info.to_json() if isinstance(info, Summary) else info}
        if seconds is not None:  # the wall time of this run of the stage (a resumed one: its last part)
            marker["seconds"] = round(seconds, 3)
        self.write_json(f"{stage}/{DONE}", marker)

    def clear_stage(self, stage: str) -> None:
        """Remove a stage's folder so that it runs again from nothing: its markers first, so a kill
        half-way never leaves a marker over partial files."""
        if not self.exists(stage):
            return
        found = self.fs.find(self.path(stage)) if self.fs.isdir(self.path(stage)) else []
        for path in sorted(found, key=lambda p: p.count("/")):  # the stage's own marker, then its chunks'
            if posixpath.basename(path) in MARKERS:
                self.fs.rm(path)
        if self.exists(stage):
            self.fs.rm(self.path(stage), recursive=True)


def changed_settings(old: dict, new: dict) -> list[str]:
    """The recorded settings that differ, as `name: old -> new`; a section recorded whole (a dict) is
    named by its fields that differ (tokens.sample: 'all' -> 'auto')."""
    out = []
    for key in sorted(set(old) | set(new)):
        was, now = old.get(key), new.get(key)
        if isinstance(was, dict) and isinstance(now, dict):
            out += [f"{key}.{k}: {_short(was.get(k))} -> {_short(now.get(k))}" for k in sorted(set(was) | set(now))
                    if _canonical(was.get(k)) != _canonical(now.get(k))]
        elif _canonical(was) != _canonical(now):
            out.append(f"{key}: {_short(was)} -> {_short(now)}")
    return out


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def run_stage(run: RunDir, stage: str, depends: dict, work, *, redo: bool = False) -> StageResult:
    """Run `work()` (returns a Summary or a dict) unless `stage` is already done with the same `depends`.

    `depends` holds the config values the stage's output depends on, JSON-serialisable.
    """
    if redo:
        run.clear_stage(stage)
    if run.is_done(stage):
        marker = run.read_json(f"{stage}/{DONE}")
        old = recorded_depends(marker, depends)
        if _canonical(old) != _canonical(depends):
            changed = sorted(k for k in set(old) | set(depends) if old.get(k) != depends.get(k))
            raise StageChangedError(
                f"stage {stage!r} in {run.url()} was made with other settings ({', '.join(changed)}): "
                f"{'; '.join(changed_settings(old, depends))}; "
                + ("use --overwrite to replace it" if stage == "export" else
                   f"use a new run_dir, or --redo {stage} to rebuild it")
            )
        return StageResult(stage, True, marker.get("info", {}))
    if run.exists(stage, STARTED):  # a killed run: resume it only with the settings it started with
        old = recorded_depends(run.read_json(f"{stage}/{STARTED}"), depends)
        if _canonical(old) != _canonical(depends):
            changed = sorted(k for k in set(old) | set(depends) if old.get(k) != depends.get(k))
            raise StageChangedError(
                f"stage {stage!r} in {run.url()} was started with other settings ({', '.join(changed)}): "
                f"{'; '.join(changed_settings(old, depends))}; it "
                f"did not finish; use a new run_dir, or --redo {stage} to start it again")
    run.write_json(f"{stage}/{STARTED}", {"depends": depends})
    began = time.perf_counter()
    info = work()
    info = info.to_json() if isinstance(info, Summary) else info
    run.mark_done(stage, info, depends, seconds=time.perf_counter() - began)
    LOG.info(f"{stage}: done in {log.duration(time.perf_counter() - began)}")
    return StageResult(stage, False, info)


def recorded_depends(marker: dict, depends: dict) -> dict:
    """A marker's recorded settings, with the fields added since (config.ADDED_FIELDS) that the current
    settings hold but the marker lacks read as their old behaviour's value."""
    from climb_ray.config import ADDED_FIELDS

    old = json.loads(json.dumps(marker.get("depends", {}), default=str))
    for dotted, value in ADDED_FIELDS.items():
        value = value(old) if callable(value) else value
        if dotted in depends and dotted not in old:
            old[dotted] = value
        section, _, name = dotted.partition(".")
        if isinstance(depends.get(section), dict) and name in depends[section] and isinstance(old.get(section), dict):
            old[section].setdefault(name, value)
    return old


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, default=str)
