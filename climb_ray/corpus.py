"""Read documents from JSONL, Parquet and folders of .txt files, local or on an object store.

Broken rows never stop a read: they are skipped and counted by reason in a `SkipCounts`.
A file that has no text field at all is an error naming the field and the file.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import asdict, dataclass
from typing import Iterator

import fsspec

from climb_ray.config import CorpusConfig
from climb_ray.corpus_stream import BROKEN, NOT_BROKEN, TOO_LONG, lines, open_stream

JSONL_EXT = (".jsonl", ".ndjson", ".json")
COMPRESSED_EXT = ("", ".gz", ".bz2", ".xz", ".zst")
FORMATS_BY_EXT = {
    **{j + c: "jsonl" for j in JSONL_EXT for c in COMPRESSED_EXT},
    ".parquet": "parquet",
    **{".txt" + c: "text" for c in COMPRESSED_EXT},
}
PROBE_ROWS = 100  # a JSONL file whose first rows all lack the text field is an error, not 100 skips


def line_cap(cfg: CorpusConfig) -> int:
    """Bytes a JSONL line may take before it is skipped unparsed as too long: max_chars characters of
    text written as JSON escapes (up to 12 bytes each) plus 64 KiB of other fields; a token-ID line
    (max_chars does not apply to ids) up to 256 MiB."""
    return (256 << 20) if cfg.token_ids_field else 12 * cfg.max_chars + (64 << 10)


class CorpusError(ValueError):
    """The corpus cannot be read as configured; the message names the path or field."""


@dataclass
class SkipCounts:
    empty: int = 0  # no text, or only whitespace (fewer than corpus.min_chars characters)
    not_text: int = 0  # the text field holds a number, list, mapping...
    not_utf8: int = 0  # bytes that do not decode as UTF-8
    too_long: int = 0  # more than corpus.max_chars characters (a longer JSONL line or .txt file is not even parsed)
    bad_json: int = 0  # a JSONL line that does not parse as a JSON object
    missing_field: int = 0  # a row without the text field (in a file where other rows have it)
    missing_label: int = 0  # corpus.label_field set, and the row has no label (missing, null, NaN or "")
    bad_label: int = 0  # a label that is not an integer or a string (a list, a fraction, true/false...)
    bad_token_ids: int = 0  # corpus.token_ids_field set, and the row's value is not a non-empty list of ids >= 0
    broken_file: int = 0  # a file that cannot be read to its end (truncated or corrupt): its rows before the break
    # are read, the rest is counted here once

    @property
    def total(self) -> int:
        return sum(asdict(self).values())

    def add(self, other: "SkipCounts") -> None:
        for key, value in asdict(other).items():
            setattr(self, key, getattr(self, key) + value)


def format_of(path: str, configured: str = "auto") -> str | None:
    """The reader for `path`: the configured format, or the one its extension names (None: not ours)."""
    if configured != "auto":
        return configured
    name = posixpath.basename(path).lower()
    return next((fmt for ext, fmt in FORMATS_BY_EXT.items() if name.endswith(ext)), None)


def list_files(paths: list[str], configured: str = "auto") -> list[tuple[str, str]]:
    """Expand files, folders and globs into sorted (url, name) pairs; name is stable across runs."""
    if not paths:
        raise CorpusError("corpus.paths is empty: give the files or folders holding the documents")
    found: dict[str, str] = {}
    for given in paths:
        fs, root = fsspec.core.url_to_fs(given)
        matches = _expand(fs, root, configured)
        if not matches:
            raise CorpusError(f"corpus path {given!r} matches no JSONL, Parquet or .txt files")
        for path in matches:
            found[_url(fs, path)] = _stable_name(path, root, fs)
    uses: dict[str, int] = {}
    for name in found.values():
        uses[name] = uses.get(name, 0) + 1
    # two paths holding files of one relative name (a/x.jsonl, b/x.jsonl): those files are named by their
    # full URL, so default ids "<name>:<row>" stay unique across the corpus
    return sorted((url, url if uses[name] > 1 else name) for url, name in found.items())


def _expand(fs, root: str, configured: str) -> list[str]:
    if any(ch in root for ch in "*?["):
        candidates = fs.glob(root)
    elif fs.isdir(root):
        candidates = [p for p in fs.find(root) if not posixpath.basename(p).startswith((".", "_"))]
    elif fs.exists(root):
        if format_of(root, configured) is None:
            raise CorpusError(f"corpus file {root!r}: cannot tell its format; set corpus.format")
        return [root]
    else:
        return []
    wanted = {configured} if configured != "auto" else set(FORMATS_BY_EXT.values())
    return sorted(p for p in candidates if fs.isfile(p) and format_of(p) in wanted)


def _url(fs, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else f"{protocol}://{path}"


def _stable_name(path: str, root: str, fs) -> str:
    base = root if fs.isdir(root) else posixpath.dirname(re.split(r"[*?\[]", root)[0])
    return posixpath.relpath(path, base) if base else posixpath.basename(path)


def iter_file(url: str, name: str, cfg: CorpusConfig, skips: SkipCounts) -> Iterator[tuple[str, object]]:
    """Yield (doc_id, text) for every good row of one file, counting the rest into `skips`
    (token IDs as an int64 array instead of text when corpus.token_ids_field is set).

    doc_id is the row's id field, or "<file name>:<row number>" (0-based) when it has none.
    """
    for doc_id, value, _ in iter_records(url, name, cfg, skips):
        yield doc_id, value


def iter_records(url: str, name: str, cfg: CorpusConfig, skips: SkipCounts, labels: "LabelKind | None" = None):
    """Yield (doc_id, text or token ids, label) for every good row; label is None unless
    corpus.label_field is set, and then an int or a str (one kind per file, else CorpusError)."""
    fmt = format_of(url, cfg.format)
    if fmt == "jsonl":
        rows = _jsonl_rows(url, name, cfg, skips)
    elif fmt == "parquet":
        rows = _parquet_rows(url, name, cfg)
    elif fmt == "text":
        if cfg.label_field or cfg.token_ids_field:
            raise CorpusError(f"corpus file {url!r} is a .txt file: corpus.label_field and corpus.token_ids_field "
                              "need JSONL or Parquet rows")
        rows = ((i, d, v, None) for i, d, v in _text_rows(url, name, 4 * cfg.max_chars))
    else:
        raise CorpusError(f"corpus file {url!r}: format {cfg.format!r} cannot read it")
    labels = labels or LabelKind(url, cfg.label_field)
    try:
        for index, doc_id, value, label in rows:
            value = _check_ids(value, skips) if cfg.token_ids_field else _check_text(value, cfg, skips)
            if value is None:
                continue
            if cfg.label_field:
                label = labels.check(label, skips)
                if label is None:
                    continue
            yield (str(doc_id) if doc_id not in (None, "") else f"{name}:{index}"), value, label
    except BROKEN as err:  # every stage reads the same rows before the break: the count is the same
        if isinstance(err, (CorpusError, *NOT_BROKEN)) or (isinstance(err, OSError) and err.errno is not None):
            raise  # the storage failed (an errno: S3 throttling, a disk error...), not the file: no silent skip
        skips.broken_file += 1






class LabelKind:
    """Checks the labels of one file: integers (integral floats count, as pandas writes integer
    columns with nulls) or strings, never both."""

    def __init__(self, url: str, field: str):
        self.url, self.field, self.kind, self.example = url, field, "", None

    def check(self, value, skips: SkipCounts):
        if value is None or value is _MISSING or value == "" or (isinstance(value, float) and value != value):
            skips.missing_label += 1
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            skips.bad_label += 1
            return None
        kind = "integer" if isinstance(value, int) else "string"
        if self.kind and kind != self.kind:
            raise CorpusError(f"corpus file {self.url!r}: corpus.label_field={self.field!r} holds {self.kind} labels "
                              f"(e.g. {self.example!r}) and {kind} labels (e.g. {value!r}); labels must be all "
                              "integers or all strings")
        self.kind, self.example = kind, self.example if self.kind else value
        return value


def _check_ids(value, skips: SkipCounts):
    import numpy as np

    try:
        ids = np.asarray(value)
    except (TypeError, ValueError):
        ids = None
    if ids is None or ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu" or ids.min() < 0:
        skips.bad_token_ids += 1
        return None
    return ids.astype(np.int64, copy=False)


def _check_text(value, cfg: CorpusConfig, skips: SkipCounts) -> str | None:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            skips.not_utf8 += 1
            return None
    if value is None:
        skips.empty += 1
        return None
    if value is TOO_LONG:
        skips.too_long += 1
        return None
    if not isinstance(value, str):
        skips.not_text += 1
        return None
    if len(value.strip()) < max(cfg.min_chars, 1):
        skips.empty += 1
        return None
    if len(value) > cfg.max_chars:
        skips.too_long += 1
        return None
    return value


_NO_ROW = object()
_MISSING = object()  # a JSONL row without the label key








def _jsonl_rows(url: str, name: str, cfg: CorpusConfig, skips: SkipCounts):
    seen_field, seen_label, missing_here, last_row = False, False, 0, None
    field, setting = (cfg.token_ids_field, "token_ids_field") if cfg.token_ids_field else (cfg.text_field, "text_field")
    with open_stream(url) as src:
        for index, raw in enumerate(lines(src, line_cap(cfg))):
            if raw is TOO_LONG:
                skips.too_long += 1
                continue
            row = _parse_json_line(raw, skips)
            if row is _NO_ROW:
                continue
            last_row = row
            if field not in row:
                skips.missing_field += 1
                missing_here += 1
                if not seen_field and missing_here >= PROBE_ROWS:
                    raise _missing_field(url, field, row, setting)
                continue
            seen_field = True
            label = row.get(cfg.label_field, _MISSING) if cfg.label_field else None
            seen_label = seen_label or label is not _MISSING
            yield index, row.get(cfg.id_field) if cfg.id_field else None, row[field], label
    if not seen_field and missing_here:
        raise _missing_field(url, field, last_row, setting)
    if cfg.label_field and seen_field and not seen_label:
        raise CorpusError(f"corpus file {url!r} has no label field {cfg.label_field!r} in any row; set "
                          "corpus.label_field")


def _parse_json_line(raw: bytes, skips: SkipCounts):
    if not raw.strip():
        return _NO_ROW
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        skips.not_utf8 += 1
        return _NO_ROW
    try:
        row = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        skips.bad_json += 1
        return _NO_ROW
    if not isinstance(row, dict):
        skips.bad_json += 1
        return _NO_ROW
    return row


def _missing_field(url: str, field: str, row: dict | None, setting: str = "text_field") -> CorpusError:
    keys = f" (its rows have: {', '.join(sorted(map(str, row))[:10])})" if row else ""
    what = "text field" if setting == "text_field" else "token-ID field"
    return CorpusError(f"corpus file {url!r} has no {what} {field!r}{keys}; set corpus.{setting}")


def _parquet_rows(url: str, name: str, cfg: CorpusConfig):
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb") as src:
        pfile = pq.ParquetFile(src)
        columns = pfile.schema_arrow.names
        field, setting = (cfg.token_ids_field, "token_ids_field") if cfg.token_ids_field else (cfg.text_field, "text_field")
        for want, what, key in [(field, "text field" if setting == "text_field" else "token-ID field", setting),
                                (cfg.label_field, "label field", "label_field")]:
            if want and want not in columns:
                raise CorpusError(f"corpus file {url!r} has no {what} {want!r} (its columns: "
                                  f"{', '.join(columns[:10])}); set corpus.{key}")
        extra = [c for c in (cfg.id_field, cfg.label_field) if c and c in columns and c != field]
        start = 0
        for batch in pfile.iter_batches(batch_size=4096, columns=[field, *extra]):
            column = batch.column(field)  # token-ID lists as numpy arrays: no Python int per token
            values = column.to_numpy(zero_copy_only=False) if cfg.token_ids_field else column.to_pylist()
            none = [None] * len(values)
            ids = batch.column(cfg.id_field).to_pylist() if cfg.id_field in extra else none
            labels = batch.column(cfg.label_field).to_pylist() if cfg.label_field else none
            yield from zip(range(start, start + len(values)), ids, values, labels)
            start += len(values)


def _text_rows(url: str, name: str, cap: int):
    """The file as one document; over `cap` bytes (4 per character of corpus.max_chars) it is not read on."""
    with open_stream(url) as src:
        data = b""
        while len(data) <= cap and (piece := src.read(cap + 1 - len(data))):
            data += piece
    yield 0, posixpath.splitext(name)[0], data if len(data) <= cap else TOO_LONG


def scan_file(url: str, name: str, cfg: CorpusConfig) -> dict:
    """Read one file through and summarise it: documents, characters, and skipped rows by reason."""
    import numpy as np

    skips, labels = SkipCounts(), LabelKind(url, cfg.label_field)
    documents = chars = 0
    per_label: dict = {}
    hashes = []
    for doc_id, value, label in iter_records(url, name, cfg, skips, labels):
        documents += 1
        if cfg.id_field:
            hashes.append(id_hash(doc_id))
        chars += len(value)  # token ids for a token-ID corpus
        if label is not None:
            per_label[label] = per_label.get(label, 0) + 1
    return {"file": url, "name": name, "documents": documents, "chars": chars,
            "label_kind": labels.kind, "labels": json.dumps([[k, v] for k, v in per_label.items()]),
            "id_hashes": np.array(hashes, dtype=np.uint64).tobytes(),
            **{f"skipped_{k}": v for k, v in asdict(skips).items()}}


def id_hash(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def check_unique_ids(rows: list[dict], cfg: CorpusConfig) -> None:
    """CorpusError naming an id that two documents share (by their 64-bit hashes, in the rows'
    `id_hashes`, then confirmed on the text of the files): the stages look documents up by id, so a
    shared one would send one document's tokens to the other's cluster. 8 bytes per document here."""
    import numpy as np

    if not cfg.id_field or not rows:
        return
    hashes = [np.frombuffer(r["id_hashes"], dtype=np.uint64) for r in rows]
    every = np.concatenate(hashes)
    order = np.argsort(every, kind="stable")
    ranked = every[order]
    same = np.flatnonzero(ranked[1:] == ranked[:-1])
    if not len(same):
        return
    owner = np.repeat(np.arange(len(rows)), [len(h) for h in hashes])[order]
    for at in same[:20]:  # a 64-bit hash clash between two different ids is possible, so confirm on the ids
        h = int(ranked[at])
        files = sorted({int(owner[at]), int(owner[at + 1])})
        ids = [(d, rows[f]["file"]) for f in files for d, _, _ in iter_records(rows[f]["file"], rows[f]["name"], cfg,
                                                                                SkipCounts()) if id_hash(d) == h]
        shared = next((d for d, _ in ids if sum(e == d for e, _ in ids) > 1), None)
        if shared is not None:
            where = " and ".join(dict.fromkeys(f for d, f in ids if d == shared))
            count = sum(d == shared for d, _ in ids)
            raise CorpusError(f"corpus.id_field={cfg.id_field!r}: id {shared!r} belongs to {count} documents "
                              f"(in {where}); ids must be unique across corpus.paths: fix the ids, or set "
                              "corpus.id_field='' to name documents <file>:<row>")
