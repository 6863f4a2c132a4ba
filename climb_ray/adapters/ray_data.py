"""Ray Data pipelines over the corpus; the reading itself is climb_ray.corpus."""

from __future__ import annotations

import ray

from climb_ray.config import CorpusConfig
from climb_ray.corpus import scan_file


def scan_corpus(files: list[tuple[str, str]], cfg: CorpusConfig) -> list[dict]:
    """Read every corpus file through in parallel (one Ray task per file); one summary row each."""
    items = [{"file": url, "name": name} for url, name in files]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    ds = ds.map(lambda row: scan_file(row["file"], row["name"], cfg))
    return sorted(ds.take_all(), key=lambda row: row["file"])
