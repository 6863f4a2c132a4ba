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


PROGRESS_ENV = "CLIMB_RAY_PROGRESS_S"  # seconds between progress lines (default 30)


class Progress:
    """A periodic progress line for a long step, from a background thread: every `interval` seconds (after
    the first interval, so short steps print nothing) `label: 3 of 12 chunks (25%), 4 min so far, about
    12 min left`, or before the first count (or with none) `label, 4 min so far`. Use as a context manager;
    `advance(n)` counts work done, `skip(n)` work a resumed stage finds done, `note(text)` names the part
    now running. The interval: $CLIMB_RAY_PROGRESS_S (default 30; 0 turns the lines off)."""

    def __init__(self, logger: logging.Logger, label: str, total: float = 0, unit: str = "",
                 interval: float | None = None):
        import threading

        self.logger, self.label, self.total, self.unit, self.part = logger, label, total, unit, ""
        self.done = self.skipped = 0.0
        if interval is None:
            try:
                interval = float(os.environ.get(PROGRESS_ENV, 30))
            except ValueError:
                interval = 30.0
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress:{label}", daemon=True)

    def __enter__(self) -> "Progress":
        import time

        self.start = time.monotonic()
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def advance(self, n: float = 1) -> None:
        self.done += n

    def skip(self, n: float) -> None:
        """Work found done before (a resumed stage): counted, but not in the rate the estimate uses."""
        self.done += n
        self.skipped += n

    def note(self, part: str) -> None:
        self.part = part

    def line(self) -> str:
        import time

        elapsed = time.monotonic() - self.start
        text = self.label + (f" ({self.part})" if self.part else "")
        if self.total and self.done:
            share = self.done / self.total
            text += f": {self.done:,.0f} of {self.total:,.0f}{' ' + self.unit if self.unit else ''} ({share:.0%})"
        text += f", {duration(elapsed)} so far"
        worked = self.done - self.skipped
        if self.total and worked > 0 and self.done < self.total:  # at this run's own rate
            text += f", about {duration(elapsed * (self.total - self.done) / worked)} left"
        return text

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.logger.info(self.line())


def duration(seconds: float) -> str:
    """3 s, 4 min, 2 h 10 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
