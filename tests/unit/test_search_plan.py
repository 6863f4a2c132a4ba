"""What rerunning the search stage does with the recorded search: the schedule rules, and the refusals
that need no Ray (re-answering and continuing with Ray: tests/ray/test_search_extend.py)."""

import pytest

from climb_ray.artifacts import RunDir, StageChangedError
from climb_ray.config import Config, ConfigError
from climb_ray.stages.pipeline import ANSWER_FIELDS, DEPENDS, stage_depends
from climb_ray.stages.search_plan import (RECORD, covers, next_iterations, prepare_search, read_recorded, run_search_stage,
                                          target_schedule, with_schedule)


def test_a_schedule_covers_another_when_it_only_adds_iterations_or_grows_the_last():
    assert covers([3, 2, 2], [3, 2]) and covers([3, 4], [3, 2]) and covers([3, 4, 1], [3, 2]) and covers([3, 2], [3, 2])
    assert not covers([2, 2, 2], [3, 2])  # an earlier iteration changed
    assert not covers([3, 1], [3, 2]) and not covers([3], [3, 2])  # smaller


def test_the_target_keeps_the_larger_of_the_recorded_and_asked_schedules_and_refuses_a_conflict():
    assert target_schedule([3, 2], [3, 2, 2], climb=True) == [3, 2, 2]
    assert target_schedule([3, 2, 2], [3, 2], climb=True) == [3, 2, 2]  # a plain rerun after --extend
    assert target_schedule([3, 2], [2, 2], climb=True) is None
    assert target_schedule([3, 2], [3, 2, 2], climb=False) is None  # random, regmix: one round


def test_a_larger_last_iteration_runs_its_extra_proxies_as_one_more_iteration():
    record = {"schedule": [3, 2], "experiments": [{"name": "climb", "iterations": [3, 2]}]}
    assert next_iterations(record, [3, 2, 4]) == [3, 2, 4]
    assert next_iterations(record, [3, 5]) == [3, 2, 3]
    assert next_iterations(record, [3, 5, 1]) == [3, 2, 3, 1]
    grown = {"schedule": [3, 5],
             "experiments": [*record["experiments"], {"name": "climb-ext1", "iterations": [3, 2, 3]}]}
    assert next_iterations(grown, [3, 5, 2]) == [3, 2, 3, 2]


def test_a_record_written_when_iterations_were_called_generations_reads_with_today_s_names(tmp_path):
    run = RunDir(str(tmp_path))
    run.write_json(f"search/{RECORD}", {"schedule": [3, 5], "experiments": [
        {"name": "climb", "generations": [3, 2]}, {"name": "climb-ext1", "generations": [3, 2, 3]}]})
    record = read_recorded(run, "search", RECORD)
    assert [e["iterations"] for e in record["experiments"]] == [[3, 2], [3, 2, 3]]
    assert next_iterations(record, [3, 5, 2]) == [3, 2, 3, 2]


def test_answer_fields_are_part_of_the_search_settings():
    assert set(ANSWER_FIELDS) <= set(DEPENDS["search"]) and "predictor" in ANSWER_FIELDS


def done_search(tmp_path, schedule=(3, 2)) -> tuple[Config, RunDir]:
    """A run folder whose search stage is marked done with `schedule` (no trials: nothing here trains)."""
    cfg = with_schedule(Config(run_dir=str(tmp_path / "run")), list(schedule))
    run = RunDir(cfg.run_dir)
    run.mark_done("search", {"trials": sum(schedule)}, stage_depends(cfg, "search"))
    return cfg, run


def rerun(cfg, run, *, extend=0):
    cfg = prepare_search(cfg, run, extend=extend)
    return run_search_stage(cfg, run, stage_depends(cfg, "search"), lambda: pytest.fail("nothing may train"),
                            redo=False, answer_fields=ANSWER_FIELDS)


def test_a_changed_trial_setting_or_earlier_iteration_still_asks_for_redo(tmp_path):
    cfg, run = done_search(tmp_path)
    cfg.proxy.lr = cfg.proxy.lr * 2
    with pytest.raises(StageChangedError, match=r"proxy\.lr.*--redo search"):
        rerun(cfg, run)
    cfg, run = done_search(tmp_path / "b")
    with pytest.raises(StageChangedError, match=r"search\.schedule.*--redo search"):
        rerun(with_schedule(cfg, [2, 2, 2]), run)


def test_a_plain_rerun_after_a_recorded_extension_is_skipped(tmp_path):
    cfg, run = done_search(tmp_path, schedule=(3, 2, 2))
    run.write_json("search/schedule.json", {"schedule": [3, 2, 2], "experiments": [
        {"name": "climb", "iterations": [3, 2]}, {"name": "climb-ext1", "iterations": [3, 2, 2]}]})
    result = rerun(with_schedule(cfg, [3, 2]), run)
    assert result.skipped and result.info == {"trials": 7}


def test_extend_is_refused_for_the_one_round_baselines(tmp_path):
    cfg, run = done_search(tmp_path)
    cfg.search.method = "random"
    with pytest.raises(ConfigError, match="--extend continues a CLIMB search"):
        rerun(cfg, run, extend=2)


def test_a_search_made_without_a_recorded_state_cannot_be_reanswered_and_says_so(tmp_path):
    cfg, run = done_search(tmp_path)
    cfg.search.answer = "best_seen" if cfg.search.answer != "best_seen" else "best"
    with pytest.raises(StageChangedError, match=r"search\.answer.*keeps no state\.json.*--redo search"):
        rerun(cfg, run)


def test_climb_ray_search_extend_hands_its_n_to_the_pipeline(monkeypatch):
    from climb_ray import commands
    from climb_ray.cli import main

    seen = {}
    monkeypatch.setattr(commands, "run", lambda cfg, **kw: seen.update(kw) or 0)
    assert main(["search", "--config", "demo", "--extend", "3"]) == 0
    assert seen["extend"] == 3 and seen["until"] == "search"


def test_a_guard_setting_is_no_stage_dependency_so_older_run_folders_stay_valid():
    """corpus.max_skip_share decides whether a run stops, never what a stage writes: changing it (or
    a run folder made before it existed) must not ask for a rebuild."""
    from climb_ray.config import Config

    cfg = Config()
    before = {stage: stage_depends(cfg, stage) for stage in DEPENDS}
    cfg.corpus.max_skip_share = 1.0
    assert {stage: stage_depends(cfg, stage) for stage in DEPENDS} == before
    assert "max_skip_share" not in before["corpus"]["corpus"] and "max_chars" in before["corpus"]["corpus"]


def test_every_config_field_is_a_stage_dependency_or_explicitly_none():
    """A new setting must be placed in config.py (its own stages, or its section's STAGES): some stages' output
    depends on it (a change rebuilds them) or none (NO_STAGE). Forgetting it would silently reuse a stale stage.
    Each stage's recorded settings are exactly the fields that name it."""
    from climb_ray.config import STAGE_ORDER, Config, settings

    found = settings()
    assert len(found) > 100
    unplaced = [name for name, (_, stages) in found.items() if stages is None]
    assert not unplaced, f"place these in config.py: setting(default, check, stages) or NO_STAGE: {unplaced}"
    assert all(set(stages) <= set(STAGE_ORDER) for _, stages in found.values())
    static = Config()
    static.embed.encoder = "static"  # every field recorded (RECORDED_WHEN: some only with the static encoder)
    for stage in STAGE_ORDER:
        recorded = set()
        for key, value in stage_depends(static, stage).items():
            recorded |= {f"{key}.{k}" for k in value} if isinstance(value, dict) else {key}
        assert recorded == {name for name, (_, stages) in found.items() if stage in stages}, stage


def test_a_search_recorded_before_the_method_and_iteration_renames_is_still_described():
    from climb_ray.stages.pipeline import describe

    info = {"weights": {"sc00": 1.0}, "trials": 4, "generations": 2, "failed": 0, "strategy": "climb",
            "predicted": -7.0, "best_seen": -7.0}
    assert "method climb" in describe("search", info) and "in 2 iteration(s)" in describe("search", info)
    today = {**{k: v for k, v in info.items() if k not in ("strategy", "generations")}, "method": "climb", "iterations": 2}
    assert describe("search", today) == describe("search", info)
