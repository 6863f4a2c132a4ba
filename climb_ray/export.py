"""The chosen mixture as a training dataset, the way ClimbMix was made from ClimbLab (no Ray here).

A budget of T tokens and weights w give each super-cluster c a target of w_c * T tokens. A
cluster with A_c tokens is taken floor(w_c T / A_c) times whole, then the remainder is filled with
its documents in the order of a seeded hash of their ids, until the remainder is reached: the
count lands within one document's tokens of the target. A cluster may be passed over at most
`max_epochs` times; a mixture needing more is refused, naming the cluster and the shortfall.
Rows are then ordered by a seeded hash of (document, copy): the shuffle across clusters, the
same for the same seed, whatever order the documents were read in.

Tokens are counted with the run's tokenizer, end-of-text included (as in tokens/meta.json).

At scale the plan is made without every document's key in one place: workers add up each cluster's
tokens per key bin (key_histogram), the bin where the partial pass ends (boundary_bin) is read
again document by document, and plan_from_histogram gives exactly what plan_cluster would.
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


BINS = 65_536  # key bins of the distributed plan: the driver holds clusters x BINS token and document counts


def key_bins(keys: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each key's bin: monotone in the key, so a cluster's documents in key order come bin by bin."""
    return np.minimum((np.asarray(keys, dtype=np.float64) * bins).astype(np.int64), bins - 1)


def key_histogram(supers: np.ndarray, keys: np.ndarray, doc_tokens: np.ndarray,
                  bins: int = BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Some documents' share of the (cluster, key bin) histogram, sparse: (cells cluster * bins + bin,
    tokens, documents), one entry per cell they fill; the driver adds these up (add_histogram)."""
    cells = np.asarray(supers, dtype=np.int64) * bins + key_bins(keys, bins)
    cells, inverse = np.unique(cells, return_inverse=True)
    tokens = np.bincount(inverse, weights=np.asarray(doc_tokens, dtype=np.float64), minlength=len(cells))
    return cells, tokens.astype(np.int64), np.bincount(inverse, minlength=len(cells)).astype(np.int64)


def add_histogram(hist: np.ndarray, cells: np.ndarray, counts: np.ndarray) -> None:
    """hist (clusters, bins) += a key_histogram part."""
    np.add.at(hist.reshape(-1), cells, counts)


def boundary_bin(target: int, tokens: np.ndarray) -> int:
    """The key bin where a cluster with these tokens per bin reaches its partial pass (-1: none)."""
    available = int(tokens.sum())
    remainder = target - (target // available) * available if target > 0 and available else 0
    return int(np.searchsorted(np.cumsum(tokens), remainder, side="left")) if remainder > 0 else -1


def plan_from_histogram(name: str, weight: float, target: int, tokens: np.ndarray, keys: np.ndarray,
                        doc_tokens: np.ndarray, positions: np.ndarray) -> ClusterPlan:
    """plan_cluster's plan from the cluster's tokens per key bin and only the documents of its
    boundary_bin (their keys, tokens and positions in reading order, for plan_cluster's stable order)."""
    available = int(tokens.sum())
    if target <= 0 or available == 0:
        return ClusterPlan(name, weight, target, available, 0, -1.0, 0)
    full, edge = int(target // available), boundary_bin(target, tokens)
    if edge < 0:  # whole passes only
        return ClusterPlan(name, weight, target, available, full, -1.0, 0)
    order = np.lexsort((positions, keys))
    cumulative = int(tokens[:edge].sum()) + np.cumsum(np.asarray(doc_tokens, dtype=np.int64)[order])
    taken = int(np.searchsorted(cumulative, target - full * available, side="left"))
    return ClusterPlan(name, weight, target, available, full, float(keys[order[taken]]), int(cumulative[taken]))


def planned_rows(plan: ClusterPlan, tokens: np.ndarray, docs: np.ndarray, edge_keys: np.ndarray) -> int:
    """Rows a plan gives (what `copies` adds up to) from the cluster's tokens and documents per key
    bin and the keys of its boundary_bin's documents."""
    edge = boundary_bin(plan.target_tokens, tokens)
    extra = int(docs[:edge].sum()) + int((np.asarray(edge_keys) <= plan.threshold).sum()) if edge >= 0 else 0
    return plan.full_passes * int(docs.sum()) + extra


def key_cutoff(plans: list[ClusterPlan]) -> float:
    """No plan takes a document whose key is above this (inf: some cluster is taken whole)."""
    return max((p.threshold for p in plans), default=-1.0) if all(p.full_passes == 0 for p in plans) else np.inf


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
