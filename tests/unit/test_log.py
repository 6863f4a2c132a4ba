"""-q / default / -v: what reaches the terminal from the climb_ray logger, and what processes started
later (a local Ray's workers) inherit."""

import contextlib
import io
import os
import subprocess
import sys

import pytest

from climb_ray import log


@pytest.fixture(autouse=True)
def restore():
    saved = {k: os.environ.get(k) for k in (log.ENV, "HF_HUB_DISABLE_PROGRESS_BARS")}
    yield
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    log._attach(log.NORMAL)


@pytest.mark.parametrize("verbosity, out, err", [(log.QUIET, [], ["climb-ray: warning: careful"]),
                                                 (log.NORMAL, ["stage done"], ["climb-ray: warning: careful"]),
                                                 (log.VERBOSE, ["detail", "stage done"], ["climb-ray: warning: careful"])])
def test_each_verbosity_shows_its_levels_info_on_stdout_warnings_on_stderr(capsys, verbosity, out, err):
    log.setup(verbosity)
    logger = log.get("climb_ray.stages.cluster")
    assert logger.name == "climb_ray.stages.cluster"
    logger.debug("detail")
    logger.info("stage done")
    logger.warning("careful")
    captured = capsys.readouterr()
    assert captured.out.splitlines() == out and captured.err.splitlines() == err


def test_setup_twice_adds_no_second_handler(capsys):
    log.setup(log.NORMAL)
    log.setup(log.NORMAL)
    log.get("x").info("once")
    assert capsys.readouterr().out == "once\n"


def test_lines_follow_stdout_when_it_is_replaced_after_setup():
    log.setup(log.NORMAL)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        log.get("climb_ray.commands").info("to the redirect")
    assert buffer.getvalue() == "to the redirect\n"


def test_a_process_started_after_setup_logs_at_its_level_and_v_brings_the_loading_bars_back():
    os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    log.setup(log.QUIET)
    assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    child = subprocess.run([sys.executable, "-c", "from climb_ray import log; l = log.get('w'); l.info('info'); "
                            "l.warning('warn')"], capture_output=True, text=True, timeout=60)
    assert child.stdout == "" and child.stderr.strip() == "climb-ray: warning: warn"  # a worker under -q
    log.setup(log.VERBOSE)
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ


def test_importing_the_package_changes_no_environment():
    env = {k: v for k, v in os.environ.items() if k not in (log.ENV, "HF_HUB_DISABLE_PROGRESS_BARS")}
    code = ("import os, climb_ray.commands, climb_ray.lease; "
            "print(os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS'), os.environ.get('CLIMB_RAY_VERBOSITY'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.split() == ["None", "None"], done.stderr


def test_the_cli_takes_v_and_q_on_every_command_but_not_both():
    from climb_ray.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["search", "-q"]).verbosity == log.QUIET
    assert parser.parse_args(["demo", "-v"]).verbosity == log.VERBOSE
    assert parser.parse_args(["serve"]).verbosity == log.NORMAL
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "-q", "-v"])


def test_a_long_step_prints_periodic_progress_with_an_estimate_and_a_short_one_prints_nothing(capsys):
    import time

    log.setup(log.NORMAL)
    logger = log.get("climb_ray.stages.embed")
    with log.Progress(logger, "embed", 4, "chunks", interval=0.05) as progress:
        progress.note("chunk 2 of 4")
        progress.advance(1)
        time.sleep(0.3)
    lines = capsys.readouterr().out.splitlines()
    assert lines and lines[0].startswith("embed (chunk 2 of 4): 1 of 4 chunks (25%), ")
    assert "so far, about " in lines[0] and lines[0].endswith(" left")
    with log.Progress(logger, "cluster", interval=0.05) as progress:  # no counter: the time so far
        time.sleep(0.2)
    assert capsys.readouterr().out.splitlines()[0].startswith("cluster, ")
    with log.Progress(logger, "tokens", 10, "documents", interval=5):  # shorter than an interval: no line
        pass
    assert capsys.readouterr().out == ""
    log.setup(log.QUIET)
    with log.Progress(logger, "export", 3, "rows", interval=0.05):  # -q: no progress lines
        time.sleep(0.2)
    assert capsys.readouterr().out == ""


def test_durations_read_as_a_person_would_say_them():
    assert [log.duration(s) for s in (3, 600, 9000)] == ["3 s", "10 min", "2 h 30 min"]


def test_a_resumed_step_estimates_from_this_runs_own_rate_not_the_work_found_done():
    progress = log.Progress(log.get("x"), "embed", 20, "chunks", interval=0)
    with progress:
        progress.skip(18)  # 18 chunks done before the kill
        assert progress.line().startswith("embed: 18 of 20 chunks (90%), ") and "left" not in progress.line()
        progress.start -= 60  # a minute into this run, one more chunk done
        progress.advance(1)
        assert progress.line() == "embed: 19 of 20 chunks (95%), 60 s so far, about 60 s left"
    empty = log.Progress(log.get("x"), "export", 5, "rows", interval=0)
    with empty:
        assert empty.line().startswith("export, ") and "of 5" not in empty.line()  # nothing counted yet
