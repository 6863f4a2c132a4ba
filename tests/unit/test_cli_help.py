import pytest

from climb_ray.cli import build_parser, main

COMMANDS = ["demo", "run", "corpus", "embed", "cluster", "search", "serve", "export", "doremi", "compare", "config"]


def help_text(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv + ["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    text = help_text([], capsys)
    for command in COMMANDS:
        assert f"    {command}" in text
    assert "RAY_ADDRESS" in text and "section.field=value" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_explains_its_options(command, capsys):
    text = help_text([command], capsys)
    assert "usage: climb-ray " + command in text
    if command not in ("corpus",):
        assert "--config" in text and "section.field=value" in text


@pytest.mark.parametrize("action", ["demo", "scan"])
def test_corpus_actions_have_help(action, capsys):
    text = help_text(["corpus", action], capsys)
    assert ("--docs-per-source" in text) if action == "demo" else ("--redo" in text)


def test_config_command_prints_the_resolved_config(capsys):
    assert main(["config", "--config", "demo", "cluster.k_init=33"]) == 0
    assert "k_init: 33" in capsys.readouterr().out


def test_parser_rejects_unknown_commands():
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["fly"])
    assert exit_.value.code == 2
