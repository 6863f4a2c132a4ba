"""Scoring a proxy on the target: text loss, multiple-choice accuracy, and their weighted score.

Targets are files. A JSONL file whose rows have `choices` is a multiple-choice set, one item per row:
    {"context": "A cat is a", "choices": ["small animal", "kind of rock"], "gold": 0}
(PIQA, ARC, HellaSwag and SIQA convert to this: question or goal as context, the answers as choices,
the index of the right one as gold; WinoGrande does not: lm-evaluation-harness scores it by the
option placed in the context, which target.tasks does). Any other file the corpus reader takes
(JSONL, Parquet, .txt folder) is a text target: held-out documents whose mean token loss is measured.

target.tasks (lm-evaluation-harness tasks) are loaded by climb_ray/lm_eval_tasks.py and scored here.

Every score is higher-is-better: a text target scores -loss, a multiple-choice target its
accuracy (acc or acc_norm, as in lm-evaluation-harness: the choice with the highest summed
log-likelihood, acc_norm dividing it by the choice's length in characters first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from climb_ray.config import ConfigError, CorpusConfig, TargetConfig
from climb_ray.corpus import CorpusError, SkipCounts, iter_file, list_files

DIRECTION = "higher_is_better"


@dataclass
class TextTarget:
    name: str
    docs: list[list[int]]  # token ids of each document (truncated to max_doc_tokens)
    kind: str = "text"


@dataclass
class ChoiceItem:
    context: list[int]
    choices: list[list[int]]
    choice_chars: list[int]  # each choice's characters as written (lm-eval's acc_norm: not its separator)
    gold: int


@dataclass
class ChoiceTarget:
    name: str
    items: list[ChoiceItem]
    malformed: int = 0
    problems: list[str] = field(default_factory=list)  # the first few reasons, "line N: ..."
    kind: str = "choice"


def open_text(path: str):
    import fsspec

    return fsspec.open(path, "rt", compression="infer", encoding="utf-8", errors="replace")


def check_targets(t: TargetConfig) -> list[str]:
    """Every target path, each expanded to the files it names; ConfigError naming the first bad one."""
    if not t.paths and not t.tasks:
        raise ConfigError("target.paths=[]: name the target files the proxies are scored on "
                          "(held-out documents or multiple-choice JSONL), or lm-eval tasks as target.tasks")
    if t.tasks:
        from climb_ray.lm_eval_tasks import _task_manager

        _task_manager(t)
    for path in t.paths:
        try:
            found = list_files([path])
        except Exception as err:  # the corpus lister names the path
            raise ConfigError(f"target.paths: {err}") from None
        if not found:
            raise ConfigError(f"target.paths: {path!r} matches no file")
    return list(t.paths)


def load_target(path: str, tok, t: TargetConfig):
    """The target at `path` (a file, folder or glob), tokenized: a ChoiceTarget when its JSONL rows
    have `choices`, else a TextTarget."""
    try:
        files = list_files([path])
    except CorpusError as err:
        raise ConfigError(str(err).replace("corpus path", "target path")) from None
    if not files:
        raise ConfigError(f"target.paths: {path!r} matches no file")
    if len(files) == 1 and _is_choice_file(files[0][0]):
        return _load_choices(files[0][0], tok, t)
    docs = []
    cfg = CorpusConfig(paths=[path], text_field=t.text_field)
    try:
        for url, name in files:
            for _, text in iter_file(url, name, cfg, SkipCounts()):
                if len(docs) >= t.max_docs:
                    break
                docs.append(text)
    except CorpusError as err:  # the reader's message, said of the target
        raise ConfigError(str(err).replace("corpus file", "target file").replace("corpus.", "target.")) from None
    if not docs:
        raise ConfigError(f"target {path!r} holds no documents (text field {t.text_field!r})")
    ids = [e.ids[: t.max_doc_tokens] for e in tok.encode_batch(docs, add_special_tokens=False)]
    return TextTarget(name=path, docs=ids)


def _is_choice_file(path: str) -> bool:
    if not path.endswith((".jsonl", ".json", ".jsonl.gz")):
        return False
    with open_text(path) as src:
        for line in src:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(row, dict) and "choices" in row
    return False


def _load_choices(path: str, tok, t: TargetConfig) -> ChoiceTarget:
    target = ChoiceTarget(name=path, items=[])
    with open_text(path) as src:
        for number, line in enumerate(src, 1):
            if not line.strip():
                continue
            problem = _choice_problem(line)
            if isinstance(problem, str):
                target.malformed += 1
                if len(target.problems) < 5:
                    target.problems.append(f"line {number}: {problem}")
                continue
            context, choices, gold = problem
            sep = "" if not context or context[-1].isspace() else " "
            conts = [c if c[:1].isspace() or not sep else sep + c for c in choices]
            ids = tok.encode_batch([context] + conts, add_special_tokens=False)
            target.items.append(ChoiceItem(ids[0].ids, [e.ids for e in ids[1:]], [len(c) for c in choices], gold))
            if len(target.items) >= t.max_items:
                break
    if not target.items:
        raise ConfigError(f"target {path!r} has no usable multiple-choice items ({'; '.join(target.problems)})")
    return target


def _choice_problem(line: str):
    """(context, choices, gold) for a good row, else a string saying what is wrong with it."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        return f"not JSON ({err.msg})"
    if not isinstance(row, dict):
        return "not a JSON object"
    context, choices, gold = row.get("context"), row.get("choices"), row.get("gold")
    if not isinstance(context, str):
        return f"context is {type(context).__name__}, not a string"
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        return "choices must be a list of at least 2 non-empty strings"
    if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < len(choices):
        return f"gold {gold!r} is not an index into {len(choices)} choices"
    return context, choices, gold


def text_loss(model, target: TextTarget, *, eot: int, seq_len: int, batch_size: int, device: str) -> float:
    """Mean loss per token over every target document (each read after an end-of-text token)."""
    windows = []
    for doc in target.docs:
        ids = [eot] + list(doc)
        for start in range(0, len(ids) - 1, seq_len):
            windows.append(ids[start:start + seq_len + 1])
    total, count = 0.0, 0
    for nll, n in _window_losses(model, windows, batch_size=batch_size, device=device):
        total += float(nll.sum())
        count += n
    return total / max(count, 1)


def choice_accuracy(model, target: ChoiceTarget, *, eot: int, seq_len: int, batch_size: int, device: str) -> dict:
    """acc and acc_norm over the items (lm-evaluation-harness definitions)."""
    pairs = [([eot] + item.context, cont) for item in target.items for cont in item.choices]
    lls = iter(loglikelihoods(model, pairs, seq_len=seq_len, batch_size=batch_size, device=device))
    acc, acc_norm = 0, 0
    for item in target.items:
        scores = np.array([next(lls) for _ in item.choices])
        acc += int(np.argmax(scores) == item.gold)
        acc_norm += int(np.argmax(scores / np.array(item.choice_chars)) == item.gold)
    n = len(target.items)
    return {"acc": acc / n, "acc_norm": acc_norm / n, "items": n, "malformed": target.malformed}


def loglikelihoods(model, pairs: list, *, seq_len: int, batch_size: int, device: str) -> list[float]:
    """The summed log-likelihood of each (context ids, continuation ids) pair's continuation, read after its
    context (left-truncated to seq_len + 1 tokens, as lm-eval does)."""
    windows = [(ctx + cont)[-(seq_len + 1):] for ctx, cont in pairs]
    spans = [min(len(cont), len(w) - 1) for (_, cont), w in zip(pairs, windows)]
    rows = [row for rows, _ in _window_losses(model, windows, batch_size=batch_size, device=device, keep_rows=True)
            for row in rows]
    return [-float(row[len(row) - span:].sum()) for row, span in zip(rows, spans)]


def _window_losses(model, windows: list[list[int]], *, batch_size: int, device: str, keep_rows: bool = False):
    """Per-token negative log-likelihoods of each window's tokens after the first, in windows' order
    when keep_rows (one array per window), else (flat array, token count) per batch."""
    import torch

    model.eval()
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    rows: dict[int, np.ndarray] = {}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.autocast("cpu", enabled=False)
    with torch.no_grad(), autocast:
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            width = max(len(windows[i]) for i in idx)
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, : len(windows[i])] = torch.tensor(windows[i])
            ids = ids.to(device)
            logits = model(input_ids=ids[:, :-1]).logits.float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none").cpu().numpy()
            for r, i in enumerate(idx):
                row = nll[r, : len(windows[i]) - 1]
                if keep_rows:
                    rows[i] = row
                else:
                    yield row, len(row)
    if keep_rows:
        yield [rows[i] for i in range(len(windows))], None
    model.train()


def score_targets(model, targets: list, t: TargetConfig, *, eot: int, seq_len: int, device: str) -> dict:
    """Each target's metrics and the weighted mean score (higher is better)."""
    from climb_ray.objective import combine, shares

    weights = shares(t.weights, len(targets))
    results = []
    for target, weight in zip(targets, weights):
        kw = {"eot": eot, "seq_len": seq_len, "batch_size": t.batch_size, "device": device}
        if target.kind == "text":
            loss = text_loss(model, target, **kw)
            results.append({"name": target.name, "kind": "text", "loss": loss, "score": -loss, "weight": weight,
                            "documents": len(target.docs)})
        elif target.kind == "task":
            from climb_ray.lm_eval_tasks import task_accuracy

            metrics = task_accuracy(model, target, **kw)
            del metrics["picks"]
            results.append({"name": target.name, "kind": "task", **metrics, "weight": weight,
                            "score": metrics[t.choice_metric] if t.choice_metric in metrics
                            else metrics.get("acc", metrics.get("acc_norm"))})
        else:
            metrics = choice_accuracy(model, target, **kw)
            results.append({"name": target.name, "kind": "choice", **metrics, "score": metrics[t.choice_metric],
                            "weight": weight})
    score = combine([r["score"] for r in results], weights)
    return {"score": score, "direction": DIRECTION, "targets": results}
