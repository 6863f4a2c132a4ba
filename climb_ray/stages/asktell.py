"""The search driven by files, for loops outside Ray: `climb-ray ask` hands out the next mixtures,
`climb-ray tell` records each one's score. The ClimbSearch state lives in <run>/asktell/state.json
(with the settings it depends on); each asked mixture is <run>/asktell/trials/<index>.json, the
same JSON proxy.command gets (command_trial.mixture_json) plus iteration and repeat; when the last
score is told the search's outputs are written to <run>/asktell/ (best_mixture.json, trials.parquet,
predictor.txt, PNGs) as the search stage's are.
"""

from __future__ import annotations

import json

from climb_ray.artifacts import BEST_MIXTURE, CLUSTERS, RunDir, TOKENS_META, _canonical, in_search, recorded_depends
from climb_ray.config import Config

OUT = "asktell"
STATE = f"{OUT}/state.json"


class AskTellError(ValueError):
    """A tell that does not fit the recorded search (an index not asked, told twice, settings changed)."""


def load(cfg: Config, run: RunDir):
    """The recorded search, refusing one made with other settings; AskTellError when there is none."""
    if not run.exists(STATE) or not run.exists(TOKENS_META):
        raise AskTellError(f"{run.url()} holds no search asked for ({run.url(STATE)} is missing): run "
                           "`climb-ray ask` first (it runs the stages before it), with the same run_dir")
    return _load(cfg, run)


def _load(cfg: Config, run: RunDir):
    """The recorded search (a new one when there is none); its outputs written if a finished one lacks them."""
    from climb_ray.stages.pipeline import stage_depends
    from climb_ray.stages.search import make_search

    search = make_search(cfg, run.read_json(TOKENS_META))
    depends = json.loads(json.dumps(stage_depends(cfg, "search"), default=str))  # as it reads back
    if run.exists(STATE):
        state = run.read_json(STATE)
        old = recorded_depends(state, depends)
        changed = [k for k in sorted(set(old) | set(depends)) if _canonical(old.get(k)) != _canonical(depends.get(k))]
        if changed:
            raise AskTellError(f"{run.url(OUT)} holds a search made with other settings ({', '.join(changed)}); "
                               f"use those, or remove {run.url(OUT)} to start afresh")
        search.restore(state["search"])
        if search.finished and not run.exists(in_search(BEST_MIXTURE, OUT)):  # the outputs' writing was stopped
            _write_outputs(run, search)
    return search, depends


def _write_outputs(run: RunDir, search):  # -> stages.search.SearchResult
    from climb_ray.stages.search import write_outputs

    return write_outputs(run, search, {}, run.read_json(CLUSTERS), out=OUT)


def ask(cfg: Config, run: RunDir, n: int) -> tuple[list[dict], str]:
    """Up to n new mixtures (each also written to asktell/trials/<index>.json), and a line on why
    there are none when there are none."""
    from climb_ray.command_trial import data_prefixes, mixture_json
    from climb_ray.stages.search import absolute

    search, depends = _load(cfg, run)  # the stages before it have run: a first ask starts the search
    batch = search.ask(n)
    tokens = absolute(run.url("tokens"))
    prefixes = data_prefixes(cfg.proxy.data_prefix if cfg.proxy.command else "", tokens, run.read_json(TOKENS_META))
    mixtures = []
    for index, weights in batch:
        trial = search.trials[index]
        mixture = {**mixture_json(search.names, weights, prefixes, cfg.proxy, seed=cfg.seed + trial.repeat,
                                  index=index, tokens_dir=tokens),
                   "iteration": trial.iteration, "repeat": trial.repeat}
        run.write_json(f"{OUT}/trials/{index}.json", mixture)
        mixtures.append(mixture)
    run.write_json(STATE, {"depends": depends, "search": search.state()})
    why = ""
    if not mixtures:
        waiting = [i for i, t in enumerate(search.trials) if t.status == "pending"]
        why = (f"the search is finished: its answer is in {run.url(in_search(BEST_MIXTURE, OUT))}" if search.finished
               else f"iteration {search.iteration} waits on the scores of trials {', '.join(map(str, waiting))}: "
                    "tell them first")
    return mixtures, why


def tell(cfg: Config, run: RunDir, index: int, score: float | None) -> dict:
    """Record trial `index`'s score (None: it failed); the outputs once the search is finished."""
    import math

    search, depends = load(cfg, run)
    if not 0 <= index < len(search.trials) or not search.trials[index].asked:
        raise AskTellError(f"trial {index} was not asked: `climb-ray ask` hands out the trials to tell")
    if search.trials[index].status != "pending":
        raise AskTellError(f"trial {index} was already told ({search.trials[index].status})")
    if score is not None and not math.isfinite(score):
        raise AskTellError(f"score {score}: must be a finite number (higher is better); tell --failed instead")
    search.tell(index, score)
    done = {"index": index, "status": search.trials[index].status, "finished": search.finished,
            "pending": sum(t.status == "pending" for t in search.trials)}
    if search.finished:  # the outputs first: a state that says finished has them
        done["outputs"] = _write_outputs(run, search)
    run.write_json(STATE, {"depends": depends, "search": search.state()})
    return done
