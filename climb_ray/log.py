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
_state = {"verbosity": NORMAL}


def get(name: str) -> logging.Logger:
    """The logger of one module (a child of `climb_ray`, so that setup() governs it); lines go to stdout
    at the default level until the command line sets another."""
    if not _handler():
        setup(_state["verbosity"])
    return LOG.getChild(name.removeprefix("climb_ray."))


def _handler():
    return next((h for h in LOG.handlers if isinstance(h, _Stdout)), None)


def setup(verbosity: int = NORMAL) -> None:
    """Send the climb_ray logger to stdout (plain lines) at the level of `verbosity`; call once per process."""
    _state["verbosity"] = verbosity
    level = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}[verbosity]
    LOG.setLevel(level)
    LOG.propagate = False
    if not _handler():
        handler = _Stdout()
        handler.setFormatter(_Formatter())
        LOG.addHandler(handler)
    if verbosity < VERBOSE:  # read by the processes that start after this (a local Ray's workers)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def verbose() -> bool:
    return _state["verbosity"] >= VERBOSE


def quiet_ray() -> None:
    """After ray.init: Ray Data's progress and operator lines off the terminal (still in its log file)
    unless verbose."""
    if verbose():
        return
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = False
    data_log = logging.getLogger("ray.data")
    for handler in data_log.handlers:
        if not hasattr(handler, "baseFilename") and type(handler).__name__ != "SessionFileHandler":
            handler.setLevel(logging.WARNING)
            handler.addFilter(lambda record: "Progress bars disabled" not in record.getMessage())


def tune_verbosity() -> int:
    """Tune's RunConfig(verbose=...): its trial tables only when verbose."""
    return 1 if verbose() else 0


class _Stdout(logging.StreamHandler):
    """A handler writing to whatever sys.stdout is when a line is logged (a redirect or a test's capture
    made after setup included)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

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
