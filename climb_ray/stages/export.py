"""The export stage: the chosen mixture (the search's answer, or export.weights) as <run>/export/:
Parquet shards (text, cluster, doc_id), optional token-ID shards, and manifest.json."""

from __future__ import annotations

import json

import numpy as np

from climb_ray.artifacts import BEST_MIXTURE, MANIFEST, RunDir, TOKENIZER, TOKENS_META
from climb_ray.config import Config
from climb_ray.export import (ExportError, check_caps, copies, doc_key, largest_budget, manifest, plan_cluster,
                             targets)


def chosen_weights(cfg: Config, run: RunDir, names: list[str], shares: np.ndarray) -> np.ndarray:
    """export.weights: best (the search's answer), uniform, prior, 0.5,0.3,..., sc00=0.7,..., JSON, or a
    .json file (a mapping or list of weights, or a best_mixture.json)."""
    from climb_ray.mixture import parse_weights

    spec = cfg.export.weights.strip()
    if spec == "best":
        if not run.exists(BEST_MIXTURE):
            raise ExportError(f"export.weights=best: {run.url()} has no search/best_mixture.json (run the search "
                              "first, or give export.weights)")
        spec = json.dumps(run.read_json(BEST_MIXTURE)["weights"])
    elif spec.endswith(".json") and not spec.startswith(("{", "[")):
        import fsspec

        try:
            with fsspec.open(spec, "r") as src:
                value = json.load(src)
        except (OSError, json.JSONDecodeError) as err:
            raise ExportError(f"export.weights={spec!r}: cannot read it as JSON ({err})") from None
        spec = json.dumps(value["weights"] if isinstance(value, dict) and "weights" in value else value)
    return parse_weights(spec, names, shares)


def read_docs(run: RunDir):
    """doc_id, super_cluster, n_tokens of every tokenized document (tokens/docs/*.parquet)."""
    import pyarrow.parquet as pq

    files = sorted(run.fs.glob(run.path("tokens/docs/*.parquet")))
    if not files:
        raise ExportError(f"{run.url('tokens')} has no docs/ table (made by an older climb-ray); rerun with "
                          "--redo tokens")
    return pq.read_table(files, filesystem=run.fs, columns=["doc_id", "super_cluster", "n_tokens"])


def check_export(cfg: Config, run: RunDir):
    """Everything the export is asked for, checked (mixture, budget, epoch caps) without writing:
    (meta, names, (doc ids, clusters, tokens), weights, budget, max_epochs). Run before an
    --overwrite removes the old export, so a bad request loses nothing."""
    meta = run.read_json(TOKENS_META)
    names = list(meta["clusters"])
    docs = read_docs(run)
    supers, n_tokens = docs.column("super_cluster").to_numpy(), docs.column("n_tokens").to_numpy()
    available = np.array([n_tokens[supers == i].sum() for i in range(len(names))], dtype=np.float64)
    weights = chosen_weights(cfg, run, names, available / available.sum())
    max_epochs = cfg.export.max_epochs or cfg.search.max_epochs
    budget = cfg.export.token_budget or largest_budget(weights, available, max_epochs)
    check_caps(names, weights, available, budget, max_epochs)
    return meta, names, (docs.column("doc_id").to_pylist(), supers, n_tokens), weights, budget, max_epochs


def export_stage(cfg: Config, run: RunDir) -> dict:
    from climb_ray.adapters.ray_export import export_rows
    from climb_ray.export_writer import ShardedWriter
    from climb_ray.stages.corpus import corpus_files

    e = cfg.export
    meta, names, (doc_ids, supers, n_tokens), weights, budget, max_epochs = check_export(cfg, run)
    keys = np.array([doc_key(d, e.seed) for d in doc_ids])
    plans, chosen, wanted = [], {}, targets(weights, budget)
    for i, name in enumerate(names):
        members = np.flatnonzero(supers == i)
        plan = plan_cluster(name, float(weights[i]), int(wanted[i]), keys[members], n_tokens[members])
        plans.append(plan)
        for m in members:
            if (times := copies(plan, keys[m])) > 0:
                chosen[doc_ids[m]] = (name, times)
    token_ids = e.write_token_ids or bool(cfg.corpus.token_ids_field)  # a token-ID corpus exports its ids
    tokenizer = run.read_bytes(TOKENIZER).decode("utf-8") if token_ids else None
    writer = ShardedWriter(run.fs, run.path("export"), e.shard_mb * 2**20,
                           np.dtype(meta["dtype"]) if token_ids else None)
    rows = {name: 0 for name in names}
    files = [(f["file"], f["name"]) for f in corpus_files(run)]
    for batch in export_rows(files, cfg.corpus, chosen, e.seed, tokenizer, int(meta["eot_id"])):
        for name, count in zip(*np.unique(batch.column("cluster").to_numpy(zero_copy_only=False), return_counts=True)):
            rows[str(name)] += int(count)
        writer.add(batch)
    shards = writer.close()
    source = {"run_dir": run.url(), "weights": e.weights, "tokenizer": meta["tokenizer"],
              "vocab_size": meta["vocab_size"], "token_dtype": meta["dtype"], "eot_id": meta["eot_id"]}
    run.write_json(MANIFEST, manifest(plans, rows, budget=budget, seed=e.seed, max_epochs=max_epochs,
                                                    source=source, shards=shards))
    return {"rows": sum(rows.values()), "tokens": int(sum(p.tokens for p in plans)), "budget": budget,
            "shards": len(shards), "shards_reused": writer.reused, "token_ids": token_ids,
            "weights": {p.name: p.weight for p in plans}}


def describe(info: dict) -> str:
    ids = ", tokens-*.bin/.idx" if info["token_ids"] else ""
    return (f"{info['rows']} rows, {info['tokens']} tokens (budget {info['budget']}) in {info['shards']} "
            f"shard(s) ({info['shards_reused']} reused) -> export/part-*.parquet{ids}, manifest.json")
