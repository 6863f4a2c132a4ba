"""What running the search stage again does with the search already in the run folder.

- Same settings: nothing (the stage is done).
- Only answer settings changed (pipeline.ANSWER_FIELDS: search.answer, predictor.*, ...): re-answer.
  The recorded search is restored, refitted and answered with the new settings, its outputs and
  _DONE marker rewritten; no proxy is trained, it takes seconds. target.weights too, when every trial
  recorded each target's score (objective.py): the scores are recombined with the new weights first.
- A larger budget: `search.schedule` continues the recorded one (the same iteration sizes so far,
  then more iterations, or a larger last one), or `climb-ray search --extend N` (one more
  iteration of N): the search continues from its recorded state and only the new proxies train.
- Anything else that changes the trials: refused, as for every stage (--redo search).

The run folder keeps, beside the search's outputs:
  <out>/schedule.json  {"schedule": the schedule the search runs to (as configured; --extend appends),
                        "experiments": [{"name": "climb", "iterations": [...]}, {"name": "climb-ext1", ...}]}
                       one Tune experiment per continuation; "iterations" is the ClimbSearch schedule it
                       runs to (a larger last iteration runs its extra proxies as one more iteration)
  <out>/state.json     {"experiment": the last finished one, "iterations": its schedule,
                        "search": ClimbSearch.state() before the answer, "trial_ids": Tune's, by index}
A killed continuation reruns with the same command: schedule.json already names its experiment, so
the command resumes that experiment (Tune restores it; finished trials stay) instead of adding another.
"""

from __future__ import annotations

import dataclasses
import time

from climb_ray import log
from climb_ray.artifacts import (DONE, STARTED, RunDir, StageResult, StageChangedError, _canonical, recorded_depends,
                                 run_stage)
from climb_ray.config import Config, ConfigError

LOG = log.get(__name__)

RECORD, STATE = "schedule.json", "state.json"
EXPERIMENT = "climb"  # the search's Tune experiment (adapters.ray_tune); continuations are climb-ext1, climb-ext2, ...
SCHEDULE = "search.schedule"
WEIGHTS = "target.weights"  # recombines the recorded targets' scores: re-answered like an answer setting


def read_recorded(run: RunDir, out: str, name: str) -> dict:
    """RECORD or STATE of the search in `out`; one written before 2026-12-02 names `iterations` `generations`."""
    data = run.read_json(f"{out}/{name}")
    for part in [data, *data.get("experiments", [])]:
        if "generations" in part:
            part["iterations"] = part.pop("generations")
    return data


def covers(new: list[int], old: list[int]) -> bool:
    """`new` is `old` or continues it: the same iteration sizes before old's last, that one at least as
    large, any number of iterations after it."""
    new, old = list(new), list(old)
    if not old or len(new) < len(old) or new[:len(old) - 1] != old[:-1]:
        return False
    return new[len(old) - 1] >= old[-1]


def target_schedule(recorded: list[int], asked: list[int], climb: bool) -> list[int] | None:
    """The schedule the search runs to: the longer of the recorded and the asked one when one covers
    the other (a plain rerun after --extend keeps the extension); None when they conflict."""
    if list(asked) == list(recorded):
        return list(recorded)
    if not climb:  # random and regmix run their budget at once: no continuation
        return None
    if covers(asked, recorded):
        return list(asked)
    return list(recorded) if covers(recorded, asked) else None


def next_iterations(record: dict, target: list[int]) -> list[int]:
    """The ClimbSearch schedule that takes the recorded search to `target` (which covers record's)."""
    old, iterations = record["schedule"], record["experiments"][-1]["iterations"]
    grow = target[len(old) - 1] - old[-1]
    return [*iterations, *([grow] if grow else []), *target[len(old):]]


def with_schedule(cfg: Config, schedule: list[int]) -> Config:
    return dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, schedule=[int(m) for m in schedule]))


def prepare_search(cfg: Config, run: RunDir, *, extend: int = 0, redo: bool = False, out: str = "search") -> Config:
    """cfg with search.schedule set to what the search runs to: the asked schedule, the run's recorded one
    when it covers the asked one, plus one iteration of `extend` proxies once the recorded search is done."""
    asked, climb = [int(m) for m in cfg.search.schedule], cfg.search.method == "climb"
    if extend < 0:
        raise ConfigError(f"--extend {extend}: must be a number of proxies, at least 1")
    if extend and not climb:
        raise ConfigError(f"--extend continues a CLIMB search; search.method={cfg.search.method} spends its budget "
                          "at once: give a larger search.schedule and --redo search")
    record = None if redo else read_record(run, out)
    if record is None:
        return with_schedule(cfg, asked + ([extend] if extend else []))
    target = target_schedule(record["schedule"], asked, climb)
    if target is None:
        return cfg  # another schedule: the stage's settings check names the change
    if extend and finished(run, out, record):
        target.append(extend)
    elif extend:
        LOG.info(f"search: the run's search to schedule {target} has not finished: continuing it first; "
                 "--extend adds an iteration once it has")
    if target != asked:
        LOG.info(f"search: schedule {target} (recorded in {run.url(out, RECORD)}; the config says {asked})")
    return with_schedule(cfg, target)


def read_record(run: RunDir, out: str) -> dict | None:
    """<out>/schedule.json; for a search made before it was kept, written from the stage's marker (and
    state.json from the Tune experiment's searcher state). None when the search has not started."""
    if run.exists(out, RECORD):
        return read_recorded(run, out, RECORD)
    marker = f"{out}/{DONE}" if run.is_done(out) else f"{out}/{STARTED}" if run.exists(out, STARTED) else None
    if marker is None:
        return None
    schedule = run.read_json(marker).get("depends", {}).get(SCHEDULE)
    if schedule is None:
        return None
    record = {"schedule": schedule, "experiments": [{"name": EXPERIMENT, "iterations": schedule}]}
    run.write_json(f"{out}/{RECORD}", record)
    if run.is_done(out) and not run.exists(out, STATE) and run.exists(out, "tune", EXPERIMENT):
        from climb_ray.adapters.ray_tune import searcher_state

        try:
            saved = searcher_state(run.url(out, "tune", EXPERIMENT))
        except RuntimeError:  # optuna keeps no searcher state: such a search can only be redone
            return record
        run.write_json(f"{out}/{STATE}", {"experiment": EXPERIMENT, "iterations": schedule,
                                          "search": saved["search"], "trial_ids": saved["trial_ids"]})
    return record


def finished(run: RunDir, out: str, record: dict) -> bool:
    """The stage is done, and done to the recorded schedule."""
    if not run.is_done(out):
        return False
    return run.read_json(f"{out}/{DONE}").get("depends", {}).get(SCHEDULE) == record["schedule"]


def start_record(run: RunDir, out: str, schedule: list[int]) -> dict:
    """The record of the stage's search (a new one runs to `schedule` in one experiment)."""
    record = read_recorded(run, out, RECORD) if run.exists(out, RECORD) else None
    if record is None:
        record = {"schedule": list(schedule), "experiments": [{"name": EXPERIMENT, "iterations": list(schedule)}]}
        run.write_json(f"{out}/{RECORD}", record)
    return record


def extend_record(run: RunDir, out: str, target: list[int]) -> None:
    """Add the experiment that continues the recorded search to `target` (nothing when it runs there already)."""
    record = read_record(run, out)
    if record is None or record["schedule"] == list(target):
        return
    name = f"{EXPERIMENT}-ext{len(record['experiments'])}"
    record["experiments"].append({"name": name, "iterations": next_iterations(record, list(target))})
    record["schedule"] = list(target)
    run.write_json(f"{out}/{RECORD}", record)


def run_search_stage(cfg: Config, run: RunDir, depends: dict, work, *, redo: bool, answer_fields: list[str],
                     out: str = "search") -> StageResult:
    """run_stage for the search, which also re-answers (only answer settings changed) and continues (the
    schedule grew); cfg and depends carry the schedule prepare_search chose."""
    done = run.is_done(out)
    if redo or not (done or run.exists(out, STARTED)):
        return run_stage(run, out, depends, work, redo=redo)
    old = recorded_depends(run.read_json(f"{out}/{DONE if done else STARTED}"), depends)
    changed = [k for k in sorted(set(old) | set(depends)) if _canonical(old.get(k)) != _canonical(depends.get(k))]
    if "target" in changed and _changed_fields(old.get("target"), depends.get("target")) == ["weights"]:
        changed = sorted({*changed, WEIGHTS} - {"target"})  # the trials' recorded targets recombine
    other = [k for k in changed if k not in (SCHEDULE, WEIGHTS)
             and not any(k == f or k.startswith(f"{f}.") for f in answer_fields)]
    if WEIGHTS in changed and not other:
        _check_reweight(cfg, run, out, done)
    grown = SCHEDULE in changed and cfg.search.method == "climb" and covers(depends[SCHEDULE], old.get(SCHEDULE) or [])
    if not changed or other or (SCHEDULE in changed and not grown):
        return run_stage(run, out, depends, work)  # done, or refused by the settings check
    if done and not grown:
        return _reanswer(cfg, run, out, depends, changed)
    extend_record(run, out, depends[SCHEDULE])
    if done:
        run.fs.rm(run.path(out, DONE))
    run.write_json(f"{out}/{STARTED}", {"depends": depends})  # a killed continuation resumes with these
    return run_stage(run, out, depends, work)


def _changed_fields(old, new) -> list[str] | None:
    """The fields of a section that differ; None when either is not a section."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None
    return [k for k in sorted(set(old) | set(new)) if _canonical(old.get(k)) != _canonical(new.get(k))]


def _check_reweight(cfg: Config, run: RunDir, out: str, done: bool) -> None:
    """A change of target.weights alone re-answers only a finished search whose trials recorded each
    target's score; StageChangedError saying why not otherwise."""
    from climb_ray.objective import reweightable

    state = read_recorded(run, out, STATE) if done and run.exists(out, STATE) else None
    if state is not None and reweightable(cfg, state["search"]["trials"]):
        return
    why = ("it has not finished (finish it with the old weights first)" if not done else
           "proxy.command reports one score, not each target's" if cfg.proxy.command else
           f"it keeps no {STATE} (search.method=optuna, or a search made before it was kept)" if state is None else
           "its trials did not record each target's score (a search made before they were recorded)")
    raise StageChangedError(f"stage {out!r} in {run.url()} was made with other target.weights and cannot be "
                            f"re-weighted from its recorded trials: {why}; use --redo {out} to rebuild it")


def _reanswer(cfg: Config, run: RunDir, out: str, depends: dict, changed: list[str]) -> StageResult:
    from climb_ray.stages.search import SearchResult, reanswer

    start = time.perf_counter()
    if not run.exists(out, STATE):
        raise StageChangedError(f"stage {out!r} in {run.url()} was made with other answer settings "
                                f"({', '.join(changed)}) and keeps no {STATE} to re-answer from (a search made "
                                f"before it was kept, or search.method=optuna); use --redo {out} to rebuild it")
    result = SearchResult.from_json(run.read_json(f"{out}/{DONE}").get("info", {})).reanswered_by(
        reanswer(cfg, run, out))
    run.mark_done(out, result, depends)
    return StageResult(out, False, {**result.to_json(), "reanswered": {
        "changed": changed, "seconds": round(time.perf_counter() - start, 1)}})

