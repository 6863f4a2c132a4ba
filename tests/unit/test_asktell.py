"""`climb-ray ask` / `tell`: the search driven by files in the run folder, for loops outside Ray."""

import json

import fsspec
import numpy as np
import pytest

from climb_ray.stages import asktell
from climb_ray import tokens as tk
from climb_ray.artifacts import RunDir
from climb_ray.config_io import load_config
from climb_ray.stages.search import make_search
from tests.conftest import ROOT, run_cli

NAMES = ["sc00", "sc01", "sc02", "sc03"]
BEST = np.array([0.1, 0.6, 0.2, 0.1])


def score_of(weights) -> float:
    return -float(np.abs(np.asarray(weights) - BEST).sum())


@pytest.fixture
def run(tmp_path):
    """A run folder with what the search reads: tokens/meta.json and cluster/clusters.json."""
    (tmp_path / "run" / "tokens").mkdir(parents=True)
    parts = {n: [tk.Part(f"{n}/00000-00000", tokens=t, documents=10)]
             for n, t in zip(NAMES, [400_000, 300_000, 200_000, 100_000])}
    tk.write_meta(fsspec.filesystem("file"), str(tmp_path / "run" / "tokens"), dtype=np.uint16, eot=0,
                  vocab_size=4096, tokenizer="bpe", parts=parts, names=NAMES)
    run = RunDir(str(tmp_path / "run"))
    run.write_json("cluster/clusters.json", {"super_clusters": [{"id": i, "top_terms": [f"t{i}"]} for i in range(4)]})
    return run


def config(run, *extra):
    return load_config(ROOT / "climb_ray" / "configs" / "demo.yaml",
                       [f"run_dir={run.url()}", "search.schedule=[6,3,2]", "search.n_candidates=2000",
                        "predictor.num_rounds=50", *extra])


def test_a_loop_of_asks_and_tells_runs_the_search_the_in_memory_one_does_and_writes_its_answer(run):
    cfg = config(run)
    told = []
    while True:
        mixtures, why = asktell.ask(cfg, run, 2)  # state read back from the run folder each time
        if not mixtures:
            assert why.startswith("the search is finished: its answer is in"), why
            break
        for m in mixtures:
            assert json.loads(run.read_bytes(f"asktell/trials/{m['index']}.json")) == m
            assert m["blend"].split()[1::2] == [f"{run.url('tokens')}/{n}/00000-00000" for n in NAMES
                                                if m["weights"][n] > 0]
            weights = [m["weights"][n] for n in NAMES]
            told.append(weights)
            done = asktell.tell(cfg, run, m["index"], score_of(weights))
    assert done["finished"] and len(told) == 11
    best = json.loads(run.read_bytes("asktell/best_mixture.json"))
    assert sum(best["weights"].values()) == pytest.approx(1.0, abs=1e-5)
    assert run.exists("asktell", "trials.parquet") and run.exists("asktell", "predictor.txt")

    search = make_search(cfg, run.read_json("tokens/meta.json"))  # the same search, in memory
    while not search.finished:
        for index, weights in search.ask(100):
            search.tell(index, score_of(weights / weights.sum()))
    assert np.allclose([t.weights / t.weights.sum() for t in search.trials], told)


def test_tells_that_do_not_fit_the_recorded_search_are_refused(run):
    cfg = config(run)
    mixtures, _ = asktell.ask(cfg, run, 1)
    with pytest.raises(asktell.AskTellError, match="trial 1 was not asked"):
        asktell.tell(cfg, run, 1, 0.5)
    asktell.tell(cfg, run, 0, None)  # failed
    with pytest.raises(asktell.AskTellError, match=r"trial 0 was already told \(failed\)"):
        asktell.tell(cfg, run, 0, 0.5)
    rest, _ = asktell.ask(cfg, run, 100)
    assert [m["index"] for m in rest] == [1, 2, 3, 4, 5]
    waiting = "iteration 0 waits on the scores of trials 1, 2, 3, 4, 5: tell them first"
    assert asktell.ask(cfg, run, 100) == ([], waiting)
    with pytest.raises(asktell.AskTellError, match=r"made with other settings \(proxy.steps\)"):
        asktell.ask(config(run, "proxy.steps=41"), run, 1)


def test_the_tell_command_records_a_score_and_refuses_an_unknown_trial_in_one_line(run):
    cfg = config(run)
    asktell.ask(cfg, run, 1)
    args = ["--config", "demo", f"run_dir={run.url()}", "search.schedule=[6,3,2]", "search.n_candidates=2000",
            "predictor.num_rounds=50"]
    done = run_cli(["tell", "--index", "0", "--score", "-0.25", *args])
    assert done.returncode == 0, done.stderr
    assert "trial 0 done" in done.stdout
    assert run.read_json("asktell/state.json")["search"]["trials"][0]["score"] == -0.25
    bad = run_cli(["tell", "--index", "7", "--failed", *args])
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "climb-ray: error: trial 7 was not asked: `climb-ray ask` hands out the trials to tell")


def test_ask_prints_only_mixtures_on_stdout_even_when_a_refit_has_a_notice(run, capsys):
    """Constant scores make the next refit degenerate, whose notice must not land among the JSON lines."""
    from climb_ray import commands
    from climb_ray.stages.pipeline import stage_depends

    cfg = config(run)
    made = {"corpus": {"documents": 40, "files": 1, "skipped": 0, "skipped_by_reason": {}},
            "embed": {"label_field": "", "chunks": 1, "chunks_reused": 0, "documents": 40, "model": "m"},
            "cluster": {"label_field": "", "clusters_pruned": 0, "documents_pruned": 0, "k_init": 4, "names": NAMES,
                        "super_clusters": 4},
            "tokens": {"clusters": 4, "documents": 40, "dtype": "uint16", "tokenizer": "bpe", "tokens": 10**6,
                       "vocab_size": 4096}}
    for stage, info in made.items():  # made earlier: ask goes straight to the search
        run.mark_done(stage, info, stage_depends(cfg, stage))
    first, _ = asktell.ask(cfg, run, 6)
    for mixture in first:
        asktell.tell(cfg, run, mixture["index"], 0.5)
    capsys.readouterr()
    assert commands.ask(cfg, n=2, redo=()) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and all(json.loads(line)["index"] >= 6 for line in lines)
    assert "degenerate" in err


def test_a_finished_search_whose_outputs_were_not_written_gets_them_on_the_next_ask(run):
    cfg = config(run)
    while True:
        mixtures, why = asktell.ask(cfg, run, 100)
        if not mixtures:
            break
        for m in mixtures:
            asktell.tell(cfg, run, m["index"], score_of([m["weights"][n] for n in NAMES]))
    best = run.read_json("asktell/best_mixture.json")
    run.fs.rm(run.path("asktell/best_mixture.json"))  # as a write_outputs stopped after the state said finished
    assert asktell.ask(cfg, run, 1)[0] == [] and run.read_json("asktell/best_mixture.json") == best


def test_a_state_recorded_before_a_setting_was_added_reads_it_as_its_old_value(run):
    cfg = config(run)
    asktell.ask(cfg, run, 1)
    state = run.read_json("asktell/state.json")
    assert state["depends"].pop("proxy.command") == ""  # a field of config.ADDED_FIELDS
    run.write_json("asktell/state.json", state)
    assert [m["index"] for m in asktell.ask(cfg, run, 1)[0]] == [1]


def test_tell_before_any_ask_and_a_negative_ask_count_are_refused_in_one_line(run, tmp_path):
    new = run_cli(["tell", "--index", "0", "--score", "1", "--config", "demo", f"run_dir={tmp_path}/new"])
    assert new.returncode == 2 and new.stderr.strip().startswith("climb-ray: error:"), new.stderr
    assert "run `climb-ray ask` first" in new.stderr and len(new.stderr.strip().splitlines()) == 1
    negative = run_cli(["ask", "--n", "-3", "--config", "demo", f"run_dir={run.url()}"])
    assert negative.returncode == 2 and "argument --n: '-3': need a whole number >= 0" in negative.stderr


def test_an_asked_mixture_is_the_json_proxy_command_gets(run, tmp_path):
    from climb_ray.command_trial import CommandRunner
    from climb_ray.config_checks import validate

    cfg = config(run)
    cfg.proxy.command = "echo '{{\"score\": 1}}' > {score_file}"  # as a YAML file holds it
    cfg = validate(cfg)
    [asked], _ = asktell.ask(cfg, run, 1)
    CommandRunner(cfg, run.url("tokens"))([asked["weights"][n] for n in NAMES], seed=asked["seed"],
                                          trial_dir=str(tmp_path / "trial"), index=asked["index"])
    given = json.loads((tmp_path / "trial" / "mixture.json").read_text())
    assert {k: v for k, v in asked.items() if k not in ("iteration", "repeat")} == given
    assert given["data_prefixes"] == {n: [f"{run.url('tokens')}/{n}/00000-00000"] for n in NAMES}
