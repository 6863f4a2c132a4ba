"""proxy.command: your own trainer runs each trial. The stand-in trainer (tests/stand_in_trainer.py) trains a
bigram LM on the Megatron-style blend of the run's token shards and writes its score."""

import json
import os
import re
import time

import pytest

from climb_ray.command_trial import CommandError, CommandRunner, blend, data_prefixes
from climb_ray.config import ConfigError
from climb_ray.config_checks import validate
from climb_ray.config_io import load_config
from tests.conftest import ROOT

TRAINER = ROOT / "tests" / "stand_in_trainer.py"


def command_config(*extra):
    return load_config(ROOT / "climb_ray" / "configs" / "demo.yaml", [*extra])


def trainer_command(target):
    return (f"proxy.command={{python}} {TRAINER} --data-path {{blend}} --target {target} --seed {{seed}} "
            "--score-file {score_file}")


def part(prefix: str, tokens: int) -> dict:
    return {"prefix": prefix, "tokens": tokens, "documents": 1}


def test_the_blend_is_megatrons_weight_prefix_list_of_the_parts_by_tokens_without_empty_clusters():
    meta = {"clusters": ["sc00", "sc01", "sc02"], "parts": {
        "sc00": [part("sc00/00000-00000", 10)], "sc01": [part("sc01/00000-00000", 5)],
        "sc02": [part("sc02/00000-00000", 30), part("sc02/00001-00000", 10)]}}
    prefixes = data_prefixes("", "/run/tokens", meta)
    assert prefixes[0] == [("/run/tokens/sc00/00000-00000", 1.0)]
    assert blend([0.3, 0.0, 0.7], prefixes) == ["0.3", "/run/tokens/sc00/00000-00000", "0.525",
                                                "/run/tokens/sc02/00000-00000", "0.175", "/run/tokens/sc02/00001-00000"]
    assert data_prefixes("/mega/{index}-{name}_text_document", "/t", meta)[:2] == [
        [("/mega/0-sc00_text_document", 1.0)], [("/mega/1-sc01_text_document", 1.0)]]


@pytest.mark.parametrize("override, named", [
    ("proxy.command=train --mix {mixture}", "unknown placeholder {mixture} (known: mixture_json, blend"),
    ("proxy.command=train {", "proxy.command='train {': is not a template"),
    ("proxy.data_prefix=/d/{cluster}", "proxy.data_prefix='/d/{cluster}': unknown placeholder {cluster}"),
    ("proxy.command_timeout_s=-1", "proxy.command_timeout_s=-1"),
    ("proxy.command=train --out {trial_dir!r}", "proxy.command='train --out {trial_dir!r}': placeholder {trial_dir!r}: no "
     "conversion or format spec (the values are shell-quoted); write {trial_dir}"),
    ("proxy.command=train --out {trial_dir:.5}", "placeholder {trial_dir:.5}: no conversion"),
])
def test_bad_command_settings_are_config_errors(override, named):
    extra = ["proxy.command=train {blend}"] if override.startswith("proxy.data_prefix") else []
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config(None, [*extra, override])


def test_the_trainer_trains_on_the_blend_and_its_score_comes_back(source_shards, tmp_path):
    folder, names, sources, target = source_shards
    runner = CommandRunner(command_config(trainer_command(target)), str(folder))
    own = [1.0 if s == "wikipedia" else 0.0 for s in sources]
    unrelated = [1.0 if s in ("bible", "dictionary") else 0.0 for s in sources]
    first = runner(own, seed=3, trial_dir=str(tmp_path / "own"), index=7)
    other = runner(unrelated, seed=3, trial_dir=str(tmp_path / "unrelated"))
    assert first["score"] > other["score"] + 0.3, (first["score"], other["score"])  # the blend reached the trainer
    assert first["score"] == pytest.approx(-first["trainer"]["loss"]) and first["direction"] == "higher_is_better"
    mixture = json.loads((tmp_path / "own" / "mixture.json").read_text())
    wiki = names[sources.index("wikipedia")]
    assert mixture["blend"] == f"1 {folder}/{wiki}/00000-00000" and mixture["seed"] == 3 and mixture["index"] == 7
    assert mixture["weights"][wiki] == 1.0 and mixture["tokens"] == 40 * 16 * 128
    assert "target loss" in (tmp_path / "own" / "trainer.stdout.log").read_text()
    assert json.loads((tmp_path / "own" / "score.json").read_text())["score"] == first["score"]
    again = runner(own, seed=3, trial_dir=str(tmp_path / "again"))
    assert again["score"] == first["score"]


@pytest.mark.parametrize("command, named", [
    ("echo 'CUDA out of memory' >&2; exit 3", r"exited with status 3 \(last stderr line: 'CUDA out of memory'\)"),
    ("echo trained", r"exited 0 but wrote no score file .*score.json"),
    ("echo '{{\"loss\": 2.5}}' > {score_file}", r"needs a finite number 'score'.*\"loss\": 2.5"),
    ("echo 'score: 1' > {score_file}", r"score.json: not JSON"),
])
def test_a_failing_trainer_fails_the_trial_with_a_clear_message(source_shards, tmp_path, command, named):
    folder, names, sources, target = source_shards
    cfg = command_config()
    cfg.proxy.command = command  # as a YAML file holds it, quoted (an override would parse it as YAML)
    runner = CommandRunner(validate(cfg), str(folder))
    with pytest.raises(CommandError, match=named) as err:
        runner([1.0] * len(names), seed=0, trial_dir=str(tmp_path / "trial"))
    assert "\n" not in str(err.value)
    assert os.path.exists(tmp_path / "trial" / "trainer.stderr.log")


def test_a_trainer_past_its_timeout_is_killed_with_its_children(source_shards, tmp_path):
    import time

    folder, names, sources, target = source_shards
    runner = CommandRunner(command_config("proxy.command=sleep 30 & echo $! > {trial_dir}/child; wait",
                                          "proxy.command_timeout_s=1"), str(folder))
    start = time.perf_counter()
    with pytest.raises(CommandError, match=r"ran past proxy.command_timeout_s=1 s and was killed"):
        runner([1.0] * len(names), seed=0, trial_dir=str(tmp_path / "trial"))
    assert time.perf_counter() - start < 10
    child = int((tmp_path / "trial" / "child").read_text())
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{child}") or "Z" in open(f"/proc/{child}/stat").read().split()[2]


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]


def test_a_background_child_of_a_trainer_that_exits_does_not_outlive_the_trial(tmp_path):
    from climb_ray.command_trial import run_command

    out, err = str(tmp_path / "out.log"), str(tmp_path / "err.log")
    assert run_command(f"sleep 300 & echo $! > {tmp_path}/child; exit 0", dict(os.environ), out, err, 60,
                       str(tmp_path)) == 0
    child = int((tmp_path / "child").read_text())
    deadline = time.time() + 5
    while not gone(child) and time.time() < deadline:
        time.sleep(0.05)
    assert gone(child)


def test_the_trainer_dies_with_a_runner_killed_by_sigkill(tmp_path):
    import signal
    import subprocess
    import sys

    script = ("import os, sys; from climb_ray.command_trial import run_command; "
              f"run_command('echo $$ > {tmp_path}/trainer; exec sleep 300', dict(os.environ), "
              f"'{tmp_path}/out.log', '{tmp_path}/err.log', 600, '{tmp_path}')")
    runner = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 30
    while not (tmp_path / "trainer").exists() or not (tmp_path / "trainer").read_text().strip():
        assert time.time() < deadline and runner.poll() is None
        time.sleep(0.05)
    trainer = int((tmp_path / "trainer").read_text())
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    while not gone(trainer) and time.time() < deadline:
        time.sleep(0.05)
    assert gone(trainer)


def test_compare_with_a_trainer_needs_no_target(tmp_path):
    from climb_ray.stages.compare import EVAL_SEED, compare

    cfg = command_config(f"run_dir={tmp_path}/run", "proxy.command=train {blend}", "target.paths=[]",
                         f"seed={EVAL_SEED}")
    with pytest.raises(ConfigError, match=r"an evaluation seed"):  # past the target check, at the seed check
        compare(cfg)


def test_a_trainer_without_a_trial_folder_leaves_no_temporary_folder(source_shards, tmp_path, monkeypatch):
    import tempfile

    folder, names, sources, target = source_shards
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp makes its folders
    cfg = command_config()
    cfg.proxy.command = "echo '{{\"score\": 1.5}}' > {score_file}"
    result = CommandRunner(validate(cfg), str(folder))([1.0] * len(names), seed=0)
    assert result["score"] == 1.5 and result["trial_dir"] is None and os.listdir(tmp_path) == []
    cfg.proxy.command = "exit 3"
    with pytest.raises(CommandError, match=r"its output is in .*climb-ray-command-"):
        CommandRunner(validate(cfg), str(folder))([1.0] * len(names), seed=0)
    assert len(os.listdir(tmp_path)) == 1  # a failed trial's logs are kept
