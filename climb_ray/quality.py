"""Per-document quality scores in [0, 1], and the pluggable scorer interface.

A scorer is any callable `list[str] -> array of floats in [0, 1]` (higher is better). Name one in
`cluster.quality_scorer`: "heuristic" (below) or "package.module:function".

The built-in heuristic needs no download. It is the share of these checks a document passes, in
the spirit of the Gopher rules (Rae et al. 2021, arXiv 2112.11446, appendix A) and the C4 filters
(Raffel et al. 2020): thresholds are ours, chosen loose so that ordinary prose passes all of them.
  1. at least 20 words                          5. digits are at most 15% of characters
  2. mean word length between 3 and 10          6. at most 30% of lines are repeated lines
  3. '#' and '...' at most 10% of words         7. at most 90% of lines start with a bullet
  4. at least 80% of words contain a letter     8. at least two English stop words
"""

from __future__ import annotations

import importlib
import re
from typing import Callable

import numpy as np

STOP_WORDS = frozenset("the be to of and that have with a in is it for on as was this".split())
BULLETS = ("-", "*", "•", "·", "‣")
Scorer = Callable[[list[str]], np.ndarray]


def heuristic_checks(text: str) -> list[bool]:
    """The eight checks of the module docstring, in order."""
    words = text.split()
    n_words = max(len(words), 1)
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [""]
    mean_len = sum(len(w) for w in words) / n_words
    symbols = sum(w.startswith("#") or "..." in w or "…" in w for w in words)
    alpha = sum(any(c.isalpha() for c in w) for w in words)
    digits = sum(c.isdigit() for c in text)
    repeated = len(lines) - len(set(lines))
    bullets = sum(line.startswith(BULLETS) for line in lines)
    stops = len({w.lower().strip(".,;:!?\"'()") for w in words} & STOP_WORDS)
    return [
        len(words) >= 20,
        3 <= mean_len <= 10,
        symbols / n_words <= 0.1,
        alpha / n_words >= 0.8,
        digits / max(len(text), 1) <= 0.15,
        repeated / len(lines) <= 0.3,
        bullets / len(lines) <= 0.9,
        stops >= 2,
    ]


def heuristic_scores(texts: list[str]) -> np.ndarray:
    """Share of the checks each text passes: (N,) float32 in [0, 1]."""
    return np.array([np.mean(heuristic_checks(t)) for t in texts], dtype=np.float32)


def load_scorer(name: str) -> Scorer:
    """'heuristic', or 'package.module:function' naming any Scorer."""
    if name == "heuristic":
        return heuristic_scores
    if not re.fullmatch(r"[\w.]+:\w+", name):
        raise ValueError(f"cluster.quality_scorer={name!r}: use 'heuristic' or 'package.module:function'")
    module_name, func = name.split(":")
    try:
        scorer = getattr(importlib.import_module(module_name), func)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cluster.quality_scorer={name!r}: cannot load it ({err})") from None
    return scorer


def score(scorer: Scorer, texts: list[str]) -> np.ndarray:
    """Run a scorer and check what it returns: one finite score in [0, 1] per text."""
    values = np.asarray(scorer(list(texts)), dtype=np.float32)
    if values.shape != (len(texts),) or not np.all(np.isfinite(values)):
        raise ValueError(f"quality scorer returned shape {values.shape} or non-finite values "
                         f"for {len(texts)} texts")
    return np.clip(values, 0.0, 1.0)
