"""Ray Data pipelines over the corpus; the reading itself is climb_ray.corpus."""

from __future__ import annotations

import ray

from climb_ray.config import CorpusConfig
from climb_ray.corpus import CorpusError, SkipCounts, scan_file


def _scan_or_report(url: str, name: str, cfg: CorpusConfig) -> dict:
    """scan_file, with a corpus error returned as data: Ray would bury it in a task traceback."""
    try:
        return {**scan_file(url, name, cfg), "error": ""}
    except CorpusError as err:
        zeros = {f"skipped_{k}": 0 for k in SkipCounts().__dict__}
        return {"file": url, "name": name, "documents": 0, "chars": 0, **zeros, "error": str(err)}


def scan_corpus(files: list[tuple[str, str]], cfg: CorpusConfig) -> list[dict]:
    """Read every corpus file through in parallel (one Ray task per file); one summary row each.

    Raises CorpusError naming the first bad file (and how many more there are) after all are read.
    """
    items = [{"file": url, "name": name} for url, name in files]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    rows = ds.map(lambda row: _scan_or_report(row["file"], row["name"], cfg)).take_all()
    rows.sort(key=lambda row: row["file"])
    errors = [error for error in (row.pop("error") for row in rows) if error]
    if errors:
        more = f" (and {len(errors) - 1} more files with errors)" if len(errors) > 1 else ""
        raise CorpusError(errors[0] + more)
    return rows
