"""What a run prints: our lines through the `climb_ray` logger at a level set by -v / -q, and Ray's
own progress (Ray Data's operator lines, Tune's trial tables, model-loading bars) kept to Ray's log
files unless -v asks for it on the terminal.

Levels: -q warnings and errors only; default one line per stage and the results; -v our debug lines
and Ray's progress too. Ray Data's lines always go to its session log (`ray-data.log` under
/tmp/ray/session_latest/logs); Tune's results to the run's search/tune folder.
"""

from __future__ import annotations

import logging
import os
import sys

LOG = logging.getLogger("climb_ray")
QUIET, NORMAL, VERBOSE = -1, 0, 1
ENV = "CLIMB_RAY_VERBOSITY"  # set by setup(): processes started after it (a local Ray's workers) log at its level
_state = {"verbosity": NORMAL, "set_hf": False}


def get(name: str) -> logging.Logger:
    """The logger of one module (a child of `climb_ray`, so that setup() governs it): info lines to stdout,
    warnings and errors to stderr, at the level of $CLIMB_RAY_VERBOSITY until the command line sets one."""
    if not _handlers():
        _attach(_env_verbosity())
    return LOG.getChild(name.removeprefix("climb_ray."))


def _env_verbosity() -> int:
    try:
        return max(QUIET, min(VERBOSE, int(os.environ.get(ENV, NORMAL))))
    except ValueError:
        return NORMAL


def _handlers() -> list:
    return [h for h in LOG.handlers if isinstance(h, _Stream)]


def _attach(verbosity: int) -> None:
    _state["verbosity"] = verbosity
    LOG.setLevel({QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}[verbosity])
    LOG.propagate = False
    if not _handlers():
        for handler in (_Stream("stdout"), _Stream("stderr")):
            handler.setFormatter(_Formatter())
            LOG.addHandler(handler)


def setup(verbosity: int = NORMAL) -> None:
    """The command line's verbosity: this process's level, and the environment of the processes it starts
    (a local Ray's workers; Hugging Face's download and loading bars off unless verbose)."""
    _attach(verbosity)
    os.environ[ENV] = str(verbosity)
    if verbosity < VERBOSE and "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"], _state["set_hf"] = "1", True
    elif verbosity >= VERBOSE and _state["set_hf"]:
        os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        _state["set_hf"] = False


def verbose() -> bool:
    return _state["verbosity"] >= VERBOSE


def tune_verbosity() -> int:
    """Tune's RunConfig(verbose=...): its trial tables only when verbose."""
    return 1 if verbose() else 0


class _Stream(logging.StreamHandler):
    """Info and debug lines to whatever sys.stdout is when a line is logged, warnings and errors to
    sys.stderr (a redirect or a test's capture made after setup included)."""

    def __init__(self, which: str):
        self.which = which
        super().__init__(getattr(sys, which))
        self.addFilter(lambda record: (record.levelno >= logging.WARNING) == (which == "stderr"))

    @property
    def stream(self):
        return getattr(sys, self.which)

    @stream.setter
    def stream(self, value):
        pass


class _Formatter(logging.Formatter):
    """Info lines as they are; warnings and errors as `climb-ray: warning: ...` (the command line's form)."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"climb-ray: {record.levelname.lower()}: {text}"
        return text
