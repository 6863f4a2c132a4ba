"""The corpus stage: every file read once (Ray Data), counts per file and skip reasons, the unique-id
and yield checks; and the chunks of files the later stages work in."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field

from climb_ray.artifacts import CORPUS_FILES, CORPUS_LABELS, CORPUS_STATS, RunDir, Summary
from climb_ray.config import Config
from climb_ray.corpus import CorpusError, SkipCounts, check_unique_ids, list_files


def corpus_stage(cfg: Config, run: RunDir) -> CorpusResult:
    """Read the whole corpus once: per-file counts in corpus/files.parquet, totals in stats.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from climb_ray.adapters.ray_data import scan_corpus

    rows = scan_corpus(list_files(cfg.corpus.paths, cfg.corpus.format), cfg.corpus)
    check_unique_ids(rows, cfg.corpus)
    for row in rows:
        del row["id_hashes"]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    run.write_bytes(CORPUS_FILES, buffer.getvalue())
    skips = SkipCounts()
    for row in rows:
        skips.add(SkipCounts(**{k: row[f"skipped_{k}"] for k in dataclasses.asdict(skips)}))
    if cfg.corpus.label_field:
        run.write_json(CORPUS_LABELS, gather_labels(rows, cfg.corpus.label_field))
    stats = {
        "files": len(rows),
        "documents": sum(r["documents"] for r in rows),
        "chars": sum(r["chars"] for r in rows),
        "skipped": skips.total,
        "skipped_by_reason": dataclasses.asdict(skips),
    }
    run.write_json(CORPUS_STATS, stats)
    check_yield(stats, cfg)
    return CorpusResult(**stats)


SKIP_HINTS = {"empty": "corpus.min_chars", "not_text": "corpus.text_field", "missing_field": "corpus.text_field",
              "not_utf8": "the files' encoding or compression", "bad_json": "corpus.format",
              "too_long": "corpus.max_chars", "broken_file": "the files (truncated or corrupt)",
              "missing_label": "corpus.label_field", "bad_label": "corpus.label_field",
              "bad_token_ids": "corpus.token_ids_field"}


def check_yield(stats: dict, cfg: Config) -> None:
    """CorpusError when the corpus gave no documents, or lost more than corpus.max_skip_share of its
    rows to one skip reason (its counts are in corpus/stats.json for a look)."""
    by_row = {k: v for k, v in stats["skipped_by_reason"].items() if k != "broken_file"}  # that one counts files
    rows = stats["documents"] + sum(by_row.values())
    reasons = ", ".join(f"{k} {v}" for k, v in stats["skipped_by_reason"].items() if v) or "none"
    if stats["documents"] == 0:
        raise CorpusError(f"corpus.paths={cfg.corpus.paths!r} gave 0 documents from {stats['files']} files "
                          f"(skipped rows: {reasons}); check the paths, corpus.format and corpus.text_field")
    broken = stats["skipped_by_reason"].get("broken_file", 0)
    if broken > cfg.corpus.max_skip_share * stats["files"] and cfg.corpus.max_skip_share < 1:
        raise CorpusError(f"corpus: {broken} of {stats['files']} files are truncated or corrupt (more than "
                          f"corpus.max_skip_share={cfg.corpus.max_skip_share:g}); check the files, or set "
                          "corpus.max_skip_share=1 to go on with what is left")
    worst, count = max(by_row.items(), key=lambda kv: kv[1])
    if count > cfg.corpus.max_skip_share * rows and cfg.corpus.max_skip_share < 1:
        raise CorpusError(f"corpus: {count} of {rows} rows skipped as {worst} (more than corpus.max_skip_share="
                          f"{cfg.corpus.max_skip_share:g}; all skips: {reasons}); check {SKIP_HINTS[worst]}, or set "
                          "corpus.max_skip_share=1 to go on with what is left")


def gather_labels(rows: list[dict], field: str) -> dict:
    """corpus/labels.json: every label with its documents, sorted (numbers as numbers); CorpusError when
    one file has integer labels and another string labels, or no file has any."""
    import json

    from climb_ray.corpus import CorpusError

    kinds = {r["label_kind"]: r["file"] for r in rows if r["label_kind"]}
    if len(kinds) > 1:
        raise CorpusError(f"corpus.label_field={field!r}: {kinds['integer']!r} has integer labels and "
                          f"{kinds['string']!r} string labels; labels must be all integers or all strings")
    if not kinds:
        raise CorpusError(f"corpus.label_field={field!r}: no document has a label")
    counts: dict = {}
    for row in rows:
        for label, documents in json.loads(row["labels"]):
            counts[label] = counts.get(label, 0) + documents
    return {"field": field, "kind": next(iter(kinds)), "labels": [[k, counts[k]] for k in sorted(counts)]}


def plan_chunks(files: list[dict], chunk_docs: int) -> list[list[dict]]:
    """Consecutive whole files grouped into chunks of about `chunk_docs` documents (empty files dropped)."""
    chunks: list[list[dict]] = [[]]
    count = 0
    for f in (f for f in files if f["documents"] > 0):
        if count >= chunk_docs:
            chunks.append([])
            count = 0
        chunks[-1].append(f)
        count += f["documents"]
    return [c for c in chunks if c]


def corpus_files(run: RunDir) -> list[dict]:
    import pyarrow.parquet as pq

    with run.fs.open(run.path(CORPUS_FILES), "rb") as src:
        return pq.read_table(src, columns=["file", "name", "documents"]).to_pylist()


@dataclass
class CorpusResult(Summary):
    files: int = 0
    documents: int = 0
    chars: int = 0
    skipped: int = 0  # rows skipped, all reasons
    skipped_by_reason: dict = field(default_factory=dict)

    def describe(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in self.skipped_by_reason.items() if v) or "none"
        return (f"{self.documents} documents in {self.files} file(s); {self.skipped} rows "
                f"skipped ({reasons}) -> {CORPUS_STATS}, {CORPUS_FILES}")
