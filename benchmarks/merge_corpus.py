"""A second multi-source corpus for bench_merge.py, from text this machine's packages ship.

None of its sources is in the demo corpus (climb_ray/democorpus.py). Six sources:
- man: manual pages of sections 1, 5, 7, 8 (/usr/share/man, Debian packages; gcloud's 16,000
  generated pages left out), rendered to plain text with groff
- info: GNU Texinfo manuals (/usr/share/info: coreutils, gettext, gnupg, wget, sed, ...)
- perl_pod: POD documentation of the Perl modules (/usr/share/perl, /usr/share/perl5)
- changelog: Debian changelog entries (/usr/share/doc/*/changelog.Debian.gz), maintainer lines left out
- licenses: licence texts, each once (/usr/share/common-licenses and the licence files in the
  dist-info folders of the Python environment's site-packages)
- readme: the long descriptions of the installed PyPI packages (dist-info METADATA bodies)

Documents are packed as the demo corpus packs them (democorpus.pack_units: 30-400 words).
"""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
import sysconfig
from pathlib import Path
from typing import Iterator

import numpy as np

from climb_ray.democorpus import _targets, pack_units

SOURCES = ("man", "info", "perl_pod", "changelog", "licenses", "readme")
SITE = Path(sysconfig.get_paths()["purelib"])


def _read(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def _paragraphs(text: str) -> list[str]:
    text = re.sub(r"-\n\s*(?=[a-z])", "", text)  # words hyphenated across lines
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def man_units(rng: np.random.Generator, n_files: int = 500) -> Iterator[list[str]]:
    """`n_files` pages drawn at random, each one group of paragraphs."""
    files = sorted(p for s in ("man1", "man5", "man7", "man8") for p in Path("/usr/share/man", s).glob("*.gz")
                   if not p.name.startswith("gcloud"))
    for i in sorted(rng.permutation(len(files))[:n_files]):
        rendered = subprocess.run(["groff", "-man", "-Tascii", "-P-cbou", "-rHY=0", "-rLL=200n"],
                                  input=_read(files[i]), capture_output=True, text=True).stdout
        lines = rendered.splitlines()[1:-1]  # the page header and footer
        yield _paragraphs("\n".join(lines))


def info_units(rng: np.random.Generator) -> Iterator[list[str]]:
    """Each node of each manual is one group of paragraphs."""
    for path in sorted(Path("/usr/share/info").glob("*.info*.gz")):
        for node in _read(path).split("\x1f"):
            lines = [ln for ln in node.splitlines() if not ln.startswith(("File: ", "* ", "Tag Table", "End Tag Table"))
                     and not re.fullmatch(r"[=*-]+", ln.strip())]  # node headers, menus, underlines
            yield _paragraphs("\n".join(lines))


def perl_pod_units(rng: np.random.Generator) -> Iterator[list[str]]:
    roots = [Path("/usr/share/perl"), Path("/usr/share/perl5")]
    files = sorted(p for r in roots for p in r.rglob("*") if p.suffix in (".pm", ".pod") and p.is_file())
    for path in files:
        pod = re.findall(r"^=\w+.*?(?:^=cut|\Z)", _read(path), flags=re.S | re.M)
        text = "\n".join(pod)
        text = re.sub(r"^=(head\d|item)\s*", "", text, flags=re.M)
        text = re.sub(r"^=\w+.*$", "", text, flags=re.M)
        text = re.sub(r"[A-Z]<+\s*([^<>]*?)\s*>+", r"\1", text)  # B<bold>, C<code>, L<link>
        yield _paragraphs(text)


def changelog_units(rng: np.random.Generator) -> Iterator[list[str]]:
    for path in sorted(Path("/usr/share/doc").glob("*/changelog.Debian.gz")):
        entries = re.split(r"^ -- .*$", _read(path), flags=re.M)
        yield [" ".join(e.split()) for e in entries if e.strip()]


def license_units(rng: np.random.Generator) -> Iterator[list[str]]:
    files = sorted(Path("/usr/share/common-licenses").iterdir())
    files += sorted(p for p in SITE.glob("*.dist-info/**/*")
                    if p.is_file() and re.match(r"(LICEN[CS]E|COPYING|NOTICE)", p.name, re.I))
    seen = set()
    for path in files:
        text = _read(path)
        digest = hashlib.sha1(" ".join(text.split()).encode()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            yield _paragraphs(text)


def readme_units(rng: np.random.Generator) -> Iterator[list[str]]:
    seen = set()
    for path in sorted(SITE.glob("*.dist-info/METADATA")):
        body = _read(path).partition("\n\n")[2]
        body = re.sub(r"```.*?```", "", body, flags=re.S)  # code blocks
        body = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", body)  # markdown links and images
        digest = hashlib.sha1(body.encode()).hexdigest()
        if body.strip() and digest not in seen:
            seen.add(digest)
            yield [p for p in _paragraphs(body) if not p.startswith(("<", "|", ".."))]


READERS = {"man": man_units, "info": info_units, "perl_pod": perl_pod_units, "changelog": changelog_units,
           "licenses": license_units, "readme": readme_units}


def build(docs_per_source: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """(texts, sources): up to `docs_per_source` documents of each source, drawn at random, duplicates dropped."""
    rng = np.random.default_rng(seed)
    texts, sources = [], []
    for source in SOURCES:
        targets, docs = _targets(rng), []
        for group in READERS[source](rng):
            docs.extend(pack_units(group, targets))
        docs = list(dict.fromkeys(docs))
        for i in sorted(rng.permutation(len(docs))[:docs_per_source]):
            texts.append(docs[i])
            sources.append(source)
    return texts, sources
