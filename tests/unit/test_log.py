"""-q / default / -v: what reaches the terminal from the climb_ray logger."""

import pytest

from climb_ray import log

@pytest.fixture(autouse=True)
def fresh_handler():
    yield
    for handler in list(log.LOG.handlers):
        log.LOG.removeHandler(handler)
    log.setup(log.NORMAL)

def _say(capsys):
    for handler in list(log.LOG.handlers):
        log.LOG.removeHandler(handler)
    return capsys


def test_lines_follow_stdout_when_it_is_replaced_after_setup(capsys):
    log.setup(log.NORMAL)  # before the capture below replaces sys.stdout
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        log.get("climb_ray.commands").info("to the redirect")
    assert buffer.getvalue() == "to the redirect\n"

@pytest.mark.parametrize("verbosity, shown", [(log.QUIET, ["climb-ray: warning: careful"]),
                                              (log.NORMAL, ["stage done", "climb-ray: warning: careful"]),
                                              (log.VERBOSE, ["detail", "stage done", "climb-ray: warning: careful"])])
def test_each_verbosity_shows_its_levels(capsys, verbosity, shown):
    _say(capsys)
    log.setup(verbosity)
    logger = log.get("climb_ray.stages.cluster")
    assert logger.name == "climb_ray.stages.cluster"
    logger.debug("detail")
    logger.info("stage done")
    logger.warning("careful")
    assert capsys.readouterr().out.splitlines() == shown

def test_setup_twice_adds_no_second_handler(capsys):
    _say(capsys)
    log.setup(log.NORMAL)
    log.setup(log.NORMAL)
    log.get("x").info("once")
    assert capsys.readouterr().out == "once\n"

def test_the_cli_takes_v_and_q_on_every_command_but_not_both():
    from climb_ray.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["search", "-q"]).verbosity == log.QUIET
    assert parser.parse_args(["demo", "-v"]).verbosity == log.VERBOSE
    assert parser.parse_args(["serve"]).verbosity == log.NORMAL
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "-q", "-v"])
