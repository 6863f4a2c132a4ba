"""The tokens stage: the tokenizer (trained or loaded), then corpus files tokenized by Ray tasks that
write their own per-super-cluster parts, tokens/<cluster>/<chunk>-<file>.bin/.idx; meta.json lists
each cluster's parts in corpus order.

With tokens.sample (auto, or a token budget) the parts hold a seeded sample per cluster, sized for the
largest proxy (climb_ray.token_sample: SAMPLE_MARGIN times its budget, or the whole cluster): a first pass
over cluster/assignments adds up each cluster's size (the cluster stage's n_tokens + 1 per document) per
key bin, as the export's plan does, and picks each cluster's last bin (tokens/sample.json); meta.json
keeps the whole corpus's counts. The export tokenizes everything itself (tokenize_chunks, into
tokens/full/) when it needs it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from climb_ray import log
from climb_ray import token_sample as ts
from climb_ray.artifacts import ASSIGNMENTS, CHUNK, CLUSTERS, CORPUS_STATS, SUCCESS, RunDir, Summary, TOKENIZER
from climb_ray.config import Config
from climb_ray.stages.corpus import plan_chunks, corpus_files

SAMPLE = "tokens/sample.json"  # the sample's plan: budget, seed, each cluster's last key bin, size, documents
SIZES = "tokens/sample_sizes.npz"  # each cluster's size per key bin (what a short sample is widened from)


def sample_budget(cfg: Config) -> int | None:
    """The proxy budget tokens.sample sizes the sample for (None: all): auto, the largest of the search's
    proxy and compare's evaluation proxy (steps x batch_size x context), or the number given."""
    setting = str(cfg.tokens.sample).strip()
    if setting == "all":
        return None
    if setting == "auto":
        p = cfg.proxy
        return max(p.tokens, (cfg.compare.eval_steps or p.steps) * p.batch_size * p.context)
    return int(setting)  # checked by config_checks


def tokens_stage(cfg: Config, run: RunDir) -> TokensResult:
    """Tokenizer (trained or loaded), then the files of every unfinished chunk tokenized in one Ray Data
    pass, each task writing its file's parts (a chunk with _SUCCESS made for the same sample is not
    redone), a sampled cluster that came out short of its need tokenized again with more bins, then meta.json."""
    from climb_ray import tokens as tk

    chunks = plan_chunks(corpus_files(run), cfg.embed.chunk_docs)
    tok, eot_token, tok_json = _tokenizer(cfg, run, [(f["file"], f["name"]) for c in chunks for f in c])
    eot, vocab = tk.eot_id(tok, eot_token), tok.get_vocab_size()
    names = [tk.cluster_name(i) for i in range(len(run.read_json(CLUSTERS)["super_clusters"]))]
    run.clear_stage("tokens/parts")  # an older climb-ray's per-chunk shards and document lists
    for path in run.fs.glob(run.path("tokens/docs/chunk-*")):
        run.fs.rm(path)
    budget = sample_budget(cfg)
    plan = None if budget is None else _sample_plan(cfg, run, chunks, names, budget)
    for attempt in range(ts.SAMPLE_ROUNDS):  # the plan always describes the parts last tokenized
        keep = None if plan is None else {"seed": plan["seed"], "bins": plan["bins"]}
        parts = tokenize_chunks(cfg, run, "tokens", chunks, tok_json, eot, vocab, keep)
        last = attempt == ts.SAMPLE_ROUNDS - 1
        if plan is None or last or not _widen(run, plan, parts, names, whole=attempt == ts.SAMPLE_ROUNDS - 2):
            break
    record = None if plan is None else _sample_record(run, plan, parts, names)
    meta = tk.write_meta(run.fs, run.path("tokens"), dtype=tk.shard_dtype(vocab), eot=eot, vocab_size=vocab,
                         tokenizer=cfg.tokens.tokenizer, parts=parts, names=names, sample=record)
    sampled = None if record is None else {
        "budget": budget, "tokens": int(sum(meta["sample"]["tokens"].values())),
        "documents": int(sum(meta["sample"]["documents"].values())),
        "whole": sum(bool(w) for w in record["whole"].values())}
    return TokensResult(tokenizer=cfg.tokens.tokenizer, vocab_size=vocab, clusters=len(names),
                        tokens=int(sum(meta["tokens"].values())), documents=int(sum(meta["documents"].values())),
                        parts=sum(len(v) for v in parts.values()), dtype=meta["dtype"], sample=sampled)


def tokenize_chunks(cfg: Config, run: RunDir, folder: str, chunks: list, tok_json: str, eot: int, vocab: int,
                    sample: dict | None) -> dict:
    """The chunks' files tokenized into <folder>/ (only the `sample` of each cluster when given), each
    finished chunk marked; the parts of each cluster by name, in corpus order."""
    from climb_ray import tokens as tk
    from climb_ray.adapters import ray_tokens as rt

    names = [tk.cluster_name(i) for i in range(len(run.read_json(CLUSTERS)["super_clusters"]))]
    done_before = {i for i in range(len(chunks)) if run.exists(chunk_marker(i, folder))
                   and run.read_json(chunk_marker(i, folder)).get("sample") == sample}
    pending = [i for i in range(len(chunks)) if i not in done_before]
    documents = sum(f["documents"] for chunk in chunks for f in chunk)
    with log.Progress(log.get(__name__), folder, documents, "documents") as progress:
        progress.skip(sum(f["documents"] for i in done_before for f in chunks[i]))
        items = [item for i in pending for item in _chunk_items(run, folder, i, chunks[i])]
        left = {i: len(chunks[i]) for i in pending}
        done: dict[int, list] = {i: [] for i in pending}
        if pending:
            progress.note(f"{len(pending)} of {len(chunks)} chunks, {len(items)} files")
        for row in rt.tokenize_files(items, cfg.corpus, tok_json, tokens_url=run.url(folder), eot=eot,
                                     dtype=tk.shard_dtype(vocab), vocab_size=vocab, sample=sample):
            done[row["chunk"]].append([row["stem"], [vars(p) for p in row["parts"]]])
            progress.advance(row["read"])
            left[row["chunk"]] -= 1
            if not left[row["chunk"]]:
                finish_chunk(run, folder, row["chunk"], {"files": sorted(done.pop(row["chunk"])), "sample": sample})
    parts: dict[str, list] = {name: [] for name in names}
    for i in range(len(chunks)):  # corpus order: chunk, then file
        for _, found in run.read_json(chunk_marker(i, folder))["files"]:
            for p in found:
                parts[p["prefix"].split("/")[0]].append(tk.Part(**p))
    return parts


def chunk_marker(index: int, folder: str = "tokens") -> str:
    """A finished chunk's marker: its files' parts and the sample they hold (written last, so a chunk
    with one is whole)."""
    return f"{folder}/chunks/{CHUNK.format(index)}/{SUCCESS}"


def finish_chunk(run: RunDir, folder: str, index: int, record: dict) -> None:
    run.write_json(chunk_marker(index, folder), record)


def _chunk_items(run: RunDir, folder: str, index: int, chunk: list[dict]) -> list[dict]:
    """The chunk's files as tokenizing tasks, each naming its parts `<chunk>-<file>`; what an earlier,
    killed attempt at the chunk left is removed first, so nothing of it is counted twice."""
    from climb_ray.artifacts import StageChangedError

    assignments = CHUNK.format(index)
    if not run.exists(ASSIGNMENTS, assignments):
        raise StageChangedError(f"cluster/assignments in {run.url()} has no {assignments} "
                                "(made by an older climb-ray); rerun with --redo cluster")
    for pattern in (f"{folder}/sc*/{index:05d}-*.bin", f"{folder}/sc*/{index:05d}-*.idx",
                    f"{folder}/docs/{index:05d}-*"):
        for path in run.fs.glob(run.path(pattern)):
            run.fs.rm(path)
    if run.exists(chunk_marker(index, folder)):  # made for another sample
        run.fs.rm(run.path(chunk_marker(index, folder)))
    return [{"chunk": index, "stem": f"{index:05d}-{j:05d}", "file": f["file"], "name": f["name"],
             "documents": f["documents"], "assignments": run.url(ASSIGNMENTS, assignments)}
            for j, f in enumerate(chunk)]


def _sample_plan(cfg: Config, run: RunDir, chunks: list, names: list[str], budget: int) -> dict:
    """tokens/sample.json (made once; kept by a resumed stage): each cluster's size and documents and
    the last key bin of its sample, from one pass over cluster/assignments (no text read)."""
    from climb_ray.adapters.ray_export import key_histograms

    if run.exists(SAMPLE):
        plan = run.read_json(SAMPLE)
        if plan["budget"] == budget and plan["seed"] == cfg.seed and plan["max_epochs"] == cfg.search.max_epochs:
            return plan
    urls = [run.url(ASSIGNMENTS, CHUNK.format(i)) for i in range(len(chunks))]
    sizes, docs = key_histograms(urls, cfg.seed, len(names))
    sizes = sizes + docs  # n_tokens + 1 (its end of text) per document: never 0
    run.write_bytes(SIZES, _npz(sizes))
    want = np.full(len(names), ts.SAMPLE_MARGIN * ts.sample_need(budget, cfg.search.max_epochs))
    plan = {"budget": budget, "seed": cfg.seed, "max_epochs": cfg.search.max_epochs, "want": want.tolist(),
            "bins": ts.sample_bins(sizes, want).tolist(), "size": sizes.sum(axis=1).tolist(),
            "documents": docs.sum(axis=1).tolist()}
    run.write_json(SAMPLE, plan)
    return plan


def _widen(run: RunDir, plan: dict, parts: dict, names: list[str], *, whole: bool = False) -> bool:
    """A sampled cluster whose tokens came out short of the need (its tokens per unit of size were
    fewer than guessed) gets more key bins, by the measured ratio (at least twice the size), or all of
    them with `whole` (the last round: it cannot come out short again): True when one did
    (tokens/sample.json rewritten, the chunks to tokenize again)."""
    from climb_ray.export import BINS

    sizes = _sizes(run)
    held = np.array([sum(p.tokens for p in parts[n]) for n in names], dtype=np.float64)
    sample_size = _sample_size(sizes, plan["bins"])
    need = ts.sample_need(plan["budget"], plan["max_epochs"])
    short = (np.array(plan["bins"]) < BINS - 1) & (held < need)
    if not short.any():
        return False
    want = np.array(plan["want"], dtype=np.float64)
    ratio = held[short] / np.maximum(sample_size[short], 1)  # tokens per unit of size, measured
    want[short] = np.maximum(ts.SAMPLE_MARGIN * need / np.maximum(ratio, 1e-9), 2 * sample_size[short])
    old = np.array(plan["bins"])
    bins = np.where(short, BINS - 1 if whole else np.maximum(ts.sample_bins(sizes, want), old + 1), old)
    log.get(__name__).info(f"tokens: the sample of {', '.join(n for n, s in zip(names, short) if s)} holds fewer "
                           f"than {int(need):,} tokens: tokenizing it again with more documents")
    plan.update(want=want.tolist(), bins=bins.tolist())
    run.write_json(SAMPLE, plan)
    return True


def _sample_record(run: RunDir, plan: dict, parts: dict, names: list[str]) -> dict:
    """meta.json's sample (budget, seed, bins, whole) and the whole corpus's tokens and documents: a
    whole cluster's as counted, a sampled one's tokens estimated by its sample's tokens per unit of size."""
    from climb_ray.export import BINS

    sizes = _sizes(run)
    held = np.array([sum(p.tokens for p in parts[n]) for n in names], dtype=np.int64)
    held_docs = [sum(p.documents for p in parts[n]) for n in names]
    sample_size = _sample_size(sizes, plan["bins"])
    whole = np.array(plan["bins"]) >= BINS - 1
    full = ts.estimate_tokens(held, np.where(whole, np.inf, sample_size), np.array(plan["size"], np.float64))
    return {"budget": plan["budget"], "seed": plan["seed"], "bins": dict(zip(names, plan["bins"])),
            "whole": {n: bool(w) for n, w in zip(names, whole)}, "full_tokens": dict(zip(names, map(int, full))),
            "full_documents": {n: int(h if w else d) for n, h, d, w in zip(names, held_docs, plan["documents"], whole)}}


def _sample_size(sizes: np.ndarray, bins: list[int]) -> np.ndarray:
    """Each cluster's size in its sample: its key bins up to and including its last one."""
    return np.array([sizes[c, :b + 1].sum() for c, b in enumerate(bins)], dtype=np.float64)


def _sizes(run: RunDir) -> np.ndarray:
    import io

    return np.load(io.BytesIO(run.read_bytes(SIZES)))["sizes"]


def _npz(sizes: np.ndarray) -> bytes:
    import io

    out = io.BytesIO()
    np.savez_compressed(out, sizes=sizes)  # mostly empty bins on a small corpus
    return out.getvalue()


def _tokenizer(cfg: Config, run: RunDir, files: list[tuple[str, str]]):
    """(tokenizer, its end-of-text token, its JSON): the BPE trained once (kept in tokens/) or a loaded one."""
    from tokenizers import Tokenizer

    from climb_ray import tokens as tk
    from climb_ray.adapters import ray_tokens as rt

    if cfg.tokens.tokenizer != "bpe":
        tok, eot_token = tk.pretrained_tokenizer(cfg.tokens.tokenizer)
        run.write_text(TOKENIZER, tok.to_str())
        return tok, eot_token, tok.to_str()
    if not run.exists(TOKENIZER):
        n_docs = run.read_json(CORPUS_STATS)["documents"]
        log.get(__name__).info(f"tokens: training a {cfg.tokens.vocab_size}-id BPE on "
                               f"{min(n_docs, cfg.tokens.train_docs):,} documents")
        texts = rt.sample_training_texts(files, cfg.corpus, n_docs, cfg.tokens.train_docs, cfg.seed)
        run.write_text(TOKENIZER, tk.train_bpe(texts, cfg.tokens.vocab_size).to_str())
    tok_json = run.read_bytes(TOKENIZER).decode("utf-8")
    return Tokenizer.from_str(tok_json), tk.EOT, tok_json


@dataclass
class TokensResult(Summary):
    tokenizer: str = ""
    vocab_size: int = 0
    clusters: int = 0
    tokens: int = 0
    documents: int = 0
    parts: int | None = None  # token parts; None: recorded before parts (one per cluster)
    dtype: str = ""
    sample: dict | None = None  # the proxies' sample (tokens.sample): budget, tokens, documents, whole clusters

    def describe(self) -> str:
        estimated = self.sample and self.sample["whole"] < self.clusters  # a sampled cluster's count is estimated
        return (f"{'~' if estimated else ''}{self.tokens} tokens of {self.documents} documents in {self.clusters} "
                f"clusters ({self.clusters if self.parts is None else self.parts} parts, {self.dtype}), tokenizer "
                f"{self.tokenizer} with {self.vocab_size} ids -> tokens/"
                + (f"; the proxies' sample: {self.sample['tokens']} tokens of {self.sample['documents']} documents "
                   f"({self.sample['whole']} whole clusters)" if self.sample else ""))
