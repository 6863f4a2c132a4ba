"""lm-evaluation-harness multiple-choice tasks as targets (target.tasks; the optional [eval] extra): lm-eval's
own task definitions build each document's context (with its few-shot examples) and choices, the proxy's
log-likelihoods come from climb_ray.evaluate's in-process scorer, tokenized as lm-eval's Hugging Face model
does, and the task's own process_results turns them into acc / acc_norm: the numbers lm-eval reports for
the same model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from climb_ray.config import ConfigError, TargetConfig
from climb_ray.evaluate import loglikelihoods


@dataclass
class TaskTarget:
    name: str
    task: object  # the lm-eval Task, whose process_results scores each document
    docs: list  # (document, [(context ids, continuation ids) of each request, in lm-eval's order])
    kind: str = "task"


def load_tasks(t: TargetConfig, tok, eot: int) -> list[TaskTarget]:
    """target.tasks as lm-eval builds them (at most max_items documents each), tokenized; ConfigError naming
    an unknown task, one that is not multiple-choice, or a missing lm-eval."""
    from climb_ray.objective import target_components

    if not t.tasks:
        return []
    tasks = _lm_eval_tasks(t)
    targets = []
    for i, (name, spec, task) in enumerate(zip(target_components(t)[len(t.paths):], t.tasks, tasks)):
        if task.get_config("output_type") != "multiple_choice":
            raise ConfigError(f"target.tasks: {spec!r} is a {task.get_config('output_type')} task; "
                              "only multiple_choice tasks are scored")
        metrics = [m.get("metric") for m in task.get_config("metric_list") or []]
        if not {"acc", "acc_norm"} & set(metrics):
            raise ConfigError(f"target.tasks: {spec!r} reports {metrics or 'no metrics'}; a target task needs "
                              "acc or acc_norm in its metric_list")
        shots = t.num_fewshot[i if len(t.num_fewshot) > 1 else 0] if t.num_fewshot else None
        if shots is not None and task.get_config("num_fewshot") != 0:  # as lm-eval's simple_evaluate does
            task.set_config(key="num_fewshot", value=shots)
        elif task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=1234)  # simple_evaluate's fewshot_random_seed
        task.build_all_requests(limit=t.max_items, rank=0, world_size=1)
        docs: dict[int, tuple] = {}
        for inst in sorted(task.instances, key=lambda i: (i.doc_id, i.idx)):
            docs.setdefault(inst.doc_id, (inst.doc, []))[1].append(_lm_eval_pair(tok, eot, *inst.args[:2]))
        if not docs:
            raise ConfigError(f"target.tasks: {spec!r} has no documents")
        targets.append(TaskTarget(name=name, task=task, docs=list(docs.values())))
    return targets


def _lm_eval_tasks(t: TargetConfig) -> list:
    """Each of target.tasks as an lm-eval Task: a YAML path, or a name found in target.task_dir (lm-eval's
    own tasks indexed only when a name is not there: that takes minutes)."""
    import logging

    TaskManager = _task_manager(t)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    include = [t.task_dir] if t.task_dir else None
    manager = TaskManager(include_path=include, include_defaults=False)
    if any(not spec.endswith((".yaml", ".yml")) and spec not in manager.all_tasks for spec in t.tasks):
        manager = TaskManager(include_path=include)
    tasks = []
    for spec in t.tasks:
        if not spec.endswith((".yaml", ".yml")) and spec not in manager.all_tasks:
            raise ConfigError(f"target.tasks: unknown lm-eval task {spec!r}; give a task YAML's path, or its "
                              "folder as target.task_dir")
        try:
            loaded = manager.load([spec])["tasks"]
        except Exception as err:  # its data: not in the datasets cache, a bad data file; a bad YAML
            raise ConfigError(f"target.tasks: {spec!r} does not load: {type(err).__name__}: {err}") from None
        if len(loaded) != 1:
            raise ConfigError(f"target.tasks: {spec!r} is a group of {len(loaded)} tasks; name each task")
        tasks.extend(loaded.values())
    return tasks


def _task_manager(t: TargetConfig):
    """lm-eval's TaskManager class; ConfigError saying how to install it where it is missing."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ConfigError(f"target.tasks={t.tasks!r}: needs lm-evaluation-harness: pip install 'climb-ray[eval]'") from None
    return TaskManager


def _lm_eval_pair(tok, eot: int, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context, continuation) token ids as lm-eval's Hugging Face model makes them: the context's trailing
    spaces moved to the continuation, the whole encoded and split; an empty context is the end-of-text token."""
    if not context:
        cont = tok.encode(continuation, add_special_tokens=False).ids
        return ([eot], cont) if cont[:1] != [eot] else (cont[:1], cont[1:])
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole, ctx = tok.encode(context + continuation).ids, tok.encode(context).ids
    return ctx, whole[len(ctx):]


def task_accuracy(model, target: TaskTarget, *, eot: int, seq_len: int, batch_size: int, device: str) -> dict:
    """The task's own metrics (acc, acc_norm: its process_results) of the model's log-likelihoods, averaged
    over its documents as lm-eval does; "picks" is each document's acc."""
    pairs = [pair for _, doc_pairs in target.docs for pair in doc_pairs]
    lls = iter(loglikelihoods(model, pairs, seq_len=seq_len, batch_size=batch_size, device=device))
    rows = [target.task.process_results(doc, [(next(lls), False) for _ in doc_pairs]) for doc, doc_pairs in target.docs]
    metrics = {m: float(np.mean([r[m] for r in rows])) for m in ("acc", "acc_norm") if m in rows[0]}
    return {**metrics, "items": len(rows), "picks": [r.get("acc") for r in rows]}
