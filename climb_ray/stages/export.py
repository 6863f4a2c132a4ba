"""The export stage: the chosen mixture (the search's answer, or export.weights) as <run>/export/:
Parquet shards (text, cluster, doc_id), optional token-ID shards, and manifest.json (export.format
parquet); the same with a dataset card README.md (hf); or one Megatron-Core indexed dataset per
cluster and the blend of the mixture (megatron)."""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field

import numpy as np

from climb_ray import log
from climb_ray.artifacts import (BEST_MIXTURE, BLEND, CONFIG_YAML, DATA_PATH, EXPORT_CARD, EXPORT_TOKENIZER, MANIFEST, RunDir, Summary,
                                 TOKENIZER, TOKENS_META)
from climb_ray.config import Config
from climb_ray.export import (BINS, ExportError, boundary_bin, check_caps, largest_budget, manifest,
                             plan_from_histogram, planned_rows, targets)


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


def docs_files(run: RunDir, folder: str = "tokens") -> list[str]:
    """URLs of <folder>/docs/*.parquet (doc_id, super_cluster, n_tokens of every tokenized document)."""
    files = sorted(run.fs.glob(run.path(f"{folder}/docs/*.parquet")))
    if not files:
        raise ExportError(f"{run.url(folder)} has no docs/ table (made by an older climb-ray); rerun with "
                          "--redo tokens")
    return [run.url(f"{folder}/docs", posixpath.basename(f)) for f in files]


FULL = "tokens/full"  # the whole corpus's tokens, when tokens/ holds the proxies' sample
META = posixpath.basename(TOKENS_META)  # in tokens/ and in FULL


def full_tokens(cfg: Config, run: RunDir) -> str:
    """The run folder's folder of every document's tokens: tokens/ when it holds them all, else tokens/full/,
    tokenized here by the tokens stage's tasks (once: kept for later exports, resumed by chunk)."""
    from climb_ray import tokens as tk
    from climb_ray.stages.corpus import corpus_files, plan_chunks
    from climb_ray.stages.tokens import tokenize_chunks

    meta = run.read_json(TOKENS_META)
    if all(meta.get("sample", {}).get("whole", {"": True}).values()):
        return "tokens"
    if not run.exists(FULL, META):
        chunks = plan_chunks(corpus_files(run), cfg.embed.chunk_docs)
        eot, vocab = int(meta["eot_id"]), int(meta["vocab_size"])
        log.get(__name__).info("export: tokenizing every document (tokens/ holds the proxies' sample) -> tokens/full/")
        parts = tokenize_chunks(cfg, run, FULL, chunks, run.read_bytes(TOKENIZER).decode("utf-8"), eot, vocab, None)
        tk.write_meta(run.fs, run.path(FULL), dtype=np.dtype(meta["dtype"]), eot=eot, vocab_size=vocab,
                      tokenizer=meta["tokenizer"], parts=parts, names=list(meta["clusters"]))
    return FULL


def check_export(cfg: Config, run: RunDir):
    """Everything the export is asked for, checked (the mixture first; then, with every document's tokens
    at hand (full_tokens may tokenize them into tokens/full/), the budget and epoch caps) without writing to
    export/: (meta, names, (tokens, documents) per cluster and key bin, weights, budget, max_epochs, the
    folder of every document's tokens, full_tokens). Run before an --overwrite removes the old export,
    so a bad request loses nothing."""
    from climb_ray.adapters.ray_export import key_histograms
    from climb_ray.tokens import token_shares

    sampled = run.read_json(TOKENS_META)  # a bad weights spec stops here, before any tokenizing
    chosen_weights(cfg, run, list(sampled["clusters"]), token_shares(sampled))
    folder = full_tokens(cfg, run)
    meta = run.read_json(f"{folder}/{META}")
    names = list(meta["clusters"])
    histograms = key_histograms(docs_files(run, folder), cfg.export.seed, len(names))
    available = histograms[0].sum(axis=1).astype(np.float64)
    weights = chosen_weights(cfg, run, names, available / available.sum())
    max_epochs = cfg.export.max_epochs or cfg.search.max_epochs
    budget = cfg.export.token_budget or largest_budget(weights, available, max_epochs)
    check_caps(names, weights, available, budget, max_epochs)
    return meta, names, histograms, weights, budget, max_epochs, folder


def plan_export(run: RunDir, names: list[str], histograms, weights: np.ndarray, budget: int, seed: int,
                bins: int = BINS, folder: str = "tokens") -> tuple[list, int]:
    """(each cluster's plan, the rows they give): from the key histograms (check_export's) and the
    documents of each cluster's boundary bin, read again on Ray Data (plan_from_histogram)."""
    from climb_ray.adapters.ray_export import boundary_documents

    tokens, docs = histograms
    wanted = targets(weights, budget)
    edges = np.array([boundary_bin(int(wanted[i]), tokens[i]) for i in range(len(names))])
    edge_docs = boundary_documents(docs_files(run, folder), seed, edges, bins) if (edges >= 0).any() else [
        (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))] * len(names)
    plans = [plan_from_histogram(name, float(weights[i]), int(wanted[i]), tokens[i], *edge_docs[i])
             for i, name in enumerate(names)]
    rows = sum(planned_rows(p, tokens[i], docs[i], edge_docs[i][0]) for i, p in enumerate(plans))
    return plans, rows


def export_stage(cfg: Config, run: RunDir) -> ExportResult:
    e = cfg.export
    meta, names, histograms, weights, budget, max_epochs, folder = check_export(cfg, run)
    plans, rows = plan_export(run, names, histograms, weights, budget, e.seed, folder=folder)
    source = {"run_dir": run.url(), "weights": e.weights, "tokenizer": meta["tokenizer"],
              "vocab_size": meta["vocab_size"], "token_dtype": meta["dtype"], "eot_id": meta["eot_id"]}
    if e.format == "megatron":
        return export_megatron(run, meta, plans, budget=budget, seed=e.seed, max_epochs=max_epochs, source=source,
                               folder=folder)
    info = export_rows_to_shards(cfg, run, meta, plans, (rows, int(histograms[1].sum())), folder)
    out = manifest(plans, info.pop("rows_per_cluster"), budget=budget, seed=e.seed, max_epochs=max_epochs,
                   source=source, shards=info.pop("shard_list"))
    if e.format == "hf":
        from climb_ray.export import dataset_card

        columns = ["ids" if cfg.corpus.token_ids_field else "text", "cluster", "doc_id"]
        run.write_text(EXPORT_CARD, dataset_card(out, run.url(CONFIG_YAML), columns))
    run.write_json(MANIFEST, out)
    return ExportResult(**info, format=e.format, tokens=int(sum(p.tokens for p in plans)), budget=budget,
                        weights={p.name: p.weight for p in plans})


def export_rows_to_shards(cfg: Config, run: RunDir, meta: dict, plans: list, sizes: tuple[int, int],
                          folder: str = "tokens") -> dict:
    """The planned rows, shuffled on Ray Data, as Parquet (and token-ID) shards of export/.
    sizes: (rows planned, documents in <folder>/docs)."""
    from climb_ray.adapters.ray_export import export_rows
    from climb_ray.export_writer import ShardedWriter
    from climb_ray.stages.corpus import corpus_files

    e = cfg.export
    token_ids = e.write_token_ids or bool(cfg.corpus.token_ids_field)  # a token-ID corpus exports its ids
    tokenizer = run.read_bytes(TOKENIZER).decode("utf-8") if token_ids else None
    writer = ShardedWriter(run.fs, run.path("export"), e.shard_mb * 2**20,
                           np.dtype(meta["dtype"]) if token_ids else None)
    rows = {p.name: 0 for p in plans}
    files = [(f["file"], f["name"]) for f in corpus_files(run)]
    with log.Progress(log.get(__name__), "export", sizes[0], "rows") as progress:
        for batch in export_rows(files, cfg.corpus, docs_files(run, folder), plans, e.seed, sizes, tokenizer,
                                 int(meta["eot_id"])):
            for name, count in zip(*np.unique(batch.column("cluster").to_numpy(zero_copy_only=False),
                                              return_counts=True)):
                rows[str(name)] += int(count)
            writer.add(batch)
            progress.advance(batch.num_rows)
        shards = writer.close()
    return {"rows": sum(rows.values()), "rows_per_cluster": rows, "shard_list": shards, "shards": len(shards),
            "shards_reused": writer.reused, "token_ids": token_ids}


def export_megatron(run: RunDir, meta: dict, plans: list, *, budget: int, seed: int, max_epochs: float,
                    source: dict, folder: str = "tokens") -> ExportResult:
    """Each cluster of weight above 0 as a Megatron-Core indexed dataset export/<cluster>.bin/.idx
    (its token parts joined, every document once), the blend (export/blend.json and data_path.txt) and the
    run's tokenizer as a Hugging Face tokenizer folder (export/tokenizer/, eos: the end-of-document id)."""
    from climb_ray.megatron import command_line, convert_shard, data_path, megatron_dtype
    from climb_ray.tokens import cluster_parts

    used = [p for p in plans if p.weight > 0]
    reused = 0
    for p in used:
        if run.exists("export", f"{p.name}.idx"):  # written last: a killed export's finished cluster
            reused += 1
        else:
            parts = [run.path(folder, part.prefix) for part in cluster_parts(meta, p.name)]
            convert_shard(run.fs, parts, run.path("export", p.name), np.dtype(meta["dtype"]))
    documents = {p.name: int(meta["documents"][p.name]) if p.weight > 0 else 0 for p in plans}
    datasets = [{"prefix": p.name, "bin": f"{p.name}.bin", "idx": f"{p.name}.idx", "documents": documents[p.name],
                 "tokens": int(meta["tokens"][p.name])} for p in used]
    path = data_path({p.name: p.weight for p in plans}, {p.name: run.url("export", p.name) for p in plans})
    dtype = megatron_dtype(meta["dtype"]).name
    save_tokenizer(run, int(meta["eot_id"]))
    run.write_json(BLEND, {
        "data_path": path, "train_tokens": budget, "max_epochs": max_epochs, "dtype": dtype,
        "eod_id": meta["eot_id"], "vocab_size": meta["vocab_size"], "tokenizer": run.url(EXPORT_TOKENIZER)})
    run.write_text(DATA_PATH, command_line(path) + "\n")
    out = manifest(plans, documents, budget=budget, seed=seed, max_epochs=max_epochs, source=source,
                   shards=datasets)
    run.write_json(MANIFEST, {**out, "megatron": {"blend": posixpath.basename(BLEND),
                                                  "data_path": posixpath.basename(DATA_PATH),
                                                  "dtype": dtype}})
    return ExportResult(format="megatron", rows=sum(documents.values()), tokens=int(sum(p.tokens for p in plans)),
                        budget=budget, shards=len(used), shards_reused=reused, token_ids=True,
                        weights={p.name: p.weight for p in plans})


def save_tokenizer(run: RunDir, eot: int) -> None:
    """The run's tokenizer as export/tokenizer/ (AutoTokenizer.from_pretrained, Megatron-LM's --tokenizer-model)."""
    import tempfile
    from pathlib import Path

    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(run.read_bytes(TOKENIZER).decode("utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=tok.id_to_token(eot)).save_pretrained(tmp)
        for path in sorted(Path(tmp).iterdir()):
            run.write_bytes(f"{EXPORT_TOKENIZER}/{path.name}", path.read_bytes())


@dataclass
class ExportResult(Summary):
    format: str = "parquet"  # export.format
    rows: int = 0  # documents exported (megatron: in the clusters of weight above 0)
    tokens: int = 0
    budget: int = 0  # the token budget asked for
    shards: int = 0
    shards_reused: int = 0  # shards a killed export had finished
    token_ids: bool = False  # token-ID shards written
    weights: dict = field(default_factory=dict)  # the exported mixture

    def describe(self) -> str:
        if self.format == "megatron":
            return (f"{len([w for w in self.weights.values() if w > 0])} Megatron indexed dataset(s) of "
                    f"{self.rows} documents ({self.shards_reused} reused), blend for {self.tokens} tokens "
                    f"(budget {self.budget}) -> export/sc*.bin/.idx, {posixpath.basename(BLEND)}, "
                    f"{posixpath.basename(DATA_PATH)}, tokenizer/, {posixpath.basename(MANIFEST)}")
        ids = ", tokens-*.bin/.idx" if self.token_ids else ""
        card = ", README.md" if self.format == "hf" else ""
        return (f"{self.rows} rows, {self.tokens} tokens (budget {self.budget}) in {self.shards} "
                f"shard(s) ({self.shards_reused} reused) -> export/part-*.parquet{ids}, manifest.json{card}")
