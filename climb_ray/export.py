"""The chosen mixture as a training dataset, the way ClimbMix was made from ClimbLab (no Ray here).

A budget of T tokens and weights w give each super-cluster c a target of w_c * T tokens. A
cluster with A_c tokens is taken floor(w_c T / A_c) times whole, then the remainder is filled with
its documents in the order of a seeded hash of their ids, until the remainder is reached: the
count lands within one document's tokens of the target. A cluster may be passed over at most
`max_epochs` times; a mixture needing more is refused, naming the cluster and the shortfall.
Rows are then ordered by a seeded hash of (document, copy): the shuffle across clusters, the
same for the same seed, whatever order the documents were read in.

Tokens are counted with the run's tokenizer, end-of-text included (as in tokens/meta.json).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


class ExportError(ValueError):
    """The export cannot be made as asked; the message names the cluster or setting and the numbers."""


@dataclass
class ClusterPlan:
    name: str
    weight: float
    target_tokens: int  # the cluster's share of the budget, in whole tokens
    available_tokens: int  # all of the cluster's tokens
    full_passes: int  # times every document is taken
    threshold: float  # documents whose key is <= threshold are taken once more (-1: none)
    extra_tokens: int  # tokens of those documents

    @property
    def tokens(self) -> int:
        return self.full_passes * self.available_tokens + self.extra_tokens


def doc_key(doc_id: str, seed: int, copy: int = -1) -> float:
    """A stable number in [0, 1) per document (copy -1) or per copy of a document, for a seed."""
    digest = hashlib.blake2b(f"{seed}:{copy}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def largest_budget(weights: np.ndarray, available: np.ndarray, max_epochs: float) -> int:
    """The most tokens a mixture can take with no cluster passed over more than max_epochs times."""
    used = weights > 0
    return int(np.floor(np.min(max_epochs * available[used] / weights[used])))


def check_caps(names: list[str], weights: np.ndarray, available: np.ndarray, budget: int, max_epochs: float) -> None:
    """ExportError naming the first cluster that the budget would pass over more than max_epochs times."""
    for name, w, a in zip(names, weights, available):
        need = w * budget
        if need <= 0:
            continue
        if a <= 0 or need > max_epochs * a:
            short = need - max_epochs * a
            fits = largest_budget(weights, available, max_epochs) if (available[weights > 0] > 0).all() else 0
            raise ExportError(
                f"cluster {name} needs {need / max(a, 1):.2f} passes over its {int(a):,} tokens (weight {w:.4f} of "
                f"{budget:,} tokens), more than export.max_epochs={max_epochs:g}: short by {int(np.ceil(short)):,} "
                f"tokens (export.token_budget={fits:,} fits, or raise export.max_epochs)")


def plan_cluster(name: str, weight: float, target: int, keys: np.ndarray, doc_tokens: np.ndarray) -> ClusterPlan:
    """`target` tokens (the cluster's share of the budget, see targets): whole passes, then the
    documents with the smallest keys until the remainder is reached."""
    available = int(doc_tokens.sum())
    if target <= 0 or available == 0:
        return ClusterPlan(name, weight, target, available, 0, -1.0, 0)
    full = int(target // available)
    remainder = target - full * available
    order = np.argsort(keys, kind="stable")
    cumulative = np.cumsum(doc_tokens[order])
    taken = int(np.searchsorted(cumulative, remainder, side="left")) + 1 if remainder > 0 else 0
    taken = min(taken, len(order))
    threshold = float(keys[order[taken - 1]]) if taken else -1.0
    extra = int(cumulative[taken - 1]) if taken else 0
    return ClusterPlan(name, weight, target, available, full, threshold, extra)


def targets(weights: np.ndarray, budget: int) -> np.ndarray:
    """Whole tokens per cluster proportional to the weights, adding up to the budget exactly."""
    from climb_ray.mixture import allocate

    return allocate(weights, budget)


def copies(plan: ClusterPlan, key: float) -> int:
    """How many times a document of the cluster (with this key) goes into the export."""
    return plan.full_passes + (1 if key <= plan.threshold else 0)


def manifest(plans: list[ClusterPlan], documents: dict[str, int], *, budget: int, seed: int, max_epochs: float,
             source: dict, shards: list[dict]) -> dict:
    """What was exported and from where: per-cluster rows and tokens, the mixture asked and obtained."""
    total = sum(p.tokens for p in plans) or 1
    return {
        "format": "climb_ray export 1",
        "source": source, "seed": seed, "token_budget": budget, "max_epochs": max_epochs,
        "tokens": int(sum(p.tokens for p in plans)), "rows": int(sum(documents.values())),
        "clusters": {p.name: {"weight": p.weight, "target_tokens": int(p.target_tokens), "tokens": p.tokens,
                              "share": p.tokens / total, "rows": int(documents.get(p.name, 0)),
                              "epochs": p.tokens / p.available_tokens if p.available_tokens else 0.0,
                              "available_tokens": p.available_tokens} for p in plans},
        "shards": shards,
    }


def dataset_card(out: dict, config_url: str, columns: list[str]) -> str:
    """README.md making the export folder a Hugging Face dataset (`datasets.load_dataset(folder)`):
    a YAML header naming the Parquet shards, then the mixture and where it came from."""
    from datetime import datetime, timezone

    import yaml

    header = {"configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "part-*.parquet"}]}],
              "tags": ["climb-ray", "data-mixture"]}
    src = out["source"]
    lines = ["---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", "",
             f"# Data mixture exported from {src['run_dir']}", "",
             f"Made by `climb-ray export` on {datetime.now(timezone.utc):%Y-%m-%d} (UTC) from the run folder "
             f"`{src['run_dir']}` (its config: `{config_url}`; the settings the export depends on: `depends` in "
             f"_DONE beside this file), mixture `export.weights={src['weights']}`.", "",
             f"{out['rows']:,} rows, {out['tokens']:,} tokens for a budget of {out['token_budget']:,} (counted with "
             f"the run's tokenizer `{src['tokenizer']}`, end-of-text included), seed {out['seed']}, at most "
             f"{out['max_epochs']:g} passes over a cluster. Columns: {', '.join(columns)} (cluster: the "
             "super-cluster; rows shuffled across clusters; a repeated document appears once per pass).", "",
             "| cluster | weight | tokens | share | rows | passes |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {c['weight']:.4f} | {c['tokens']:,} | {c['share']:.4f} | {c['rows']:,} | {c['epochs']:.2f} |"
              for name, c in out["clusters"].items()]
    lines += ["", "Open it with `datasets.load_dataset(\"<this folder>\", split=\"train\")`; manifest.json has the "
              "same numbers and the shard list."]
    return "\n".join(lines) + "\n"
