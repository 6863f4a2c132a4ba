"""The tokens stage: the tokenizer (trained or loaded), then every corpus file tokenized by a Ray task
that writes its own per-super-cluster parts, tokens/<cluster>/<chunk>-<file>.bin/.idx; meta.json lists
each cluster's parts in corpus order."""

from __future__ import annotations

from dataclasses import dataclass

from climb_ray import log
from climb_ray.artifacts import CLUSTERS, CORPUS_STATS, RunDir, Summary, TOKENIZER
from climb_ray.config import Config
from climb_ray.stages.corpus import plan_chunks, corpus_files


def tokens_stage(cfg: Config, run: RunDir) -> TokensResult:
    """Tokenizer (trained or loaded), then the files of every unfinished chunk tokenized in one Ray Data
    pass, each task writing its file's parts (a chunk with _SUCCESS is not redone), then meta.json."""
    chunks = plan_chunks(corpus_files(run), cfg.embed.chunk_docs)
    documents = sum(f["documents"] for chunk in chunks for f in chunk)
    with log.Progress(log.get(__name__), "tokens", documents, "documents") as progress:
        return _tokenize(cfg, run, chunks, progress)


def _tokenize(cfg: Config, run: RunDir, chunks: list, progress: log.Progress) -> TokensResult:
    from climb_ray import tokens as tk
    from climb_ray.adapters import ray_tokens as rt

    tok, eot_token, tok_json = _tokenizer(cfg, run, [(f["file"], f["name"]) for c in chunks for f in c], progress)
    eot, vocab = tk.eot_id(tok, eot_token), tok.get_vocab_size()
    dtype = tk.shard_dtype(vocab)
    names = [tk.cluster_name(i) for i in range(len(run.read_json(CLUSTERS)["super_clusters"]))]
    run.clear_stage("tokens/parts")  # an older climb-ray's per-chunk shards and document lists
    for path in run.fs.glob(run.path("tokens/docs/chunk-*")):
        run.fs.rm(path)
    pending = [i for i, chunk in enumerate(chunks) if not run.exists(chunk_marker(i))]
    progress.skip(sum(f["documents"] for i, chunk in enumerate(chunks) if i not in pending for f in chunk))
    items = [item for i in pending for item in _chunk_items(run, i, chunks[i])]
    left = {i: len(chunks[i]) for i in pending}
    done: dict[int, list] = {i: [] for i in pending}
    if pending:
        progress.note(f"{len(pending)} of {len(chunks)} chunks, {len(items)} files")
    for row in rt.tokenize_files(items, cfg.corpus, tok_json, tokens_url=run.url("tokens"), eot=eot, dtype=dtype,
                                 vocab_size=vocab):
        done[row["chunk"]].append([row["stem"], [vars(p) for p in row["parts"]]])
        progress.advance(row["documents"])
        left[row["chunk"]] -= 1
        if not left[row["chunk"]]:
            finish_chunk(run, row["chunk"], sorted(done.pop(row["chunk"])))
    parts: dict[str, list] = {name: [] for name in names}
    for i in range(len(chunks)):  # corpus order: chunk, then file
        for _, found in run.read_json(chunk_marker(i))["files"]:
            for p in found:
                parts[p["prefix"].split("/")[0]].append(tk.Part(**p))
    meta = tk.write_meta(run.fs, run.path("tokens"), dtype=dtype, eot=eot, vocab_size=vocab,
                         tokenizer=cfg.tokens.tokenizer, parts=parts, names=names)
    return TokensResult(tokenizer=cfg.tokens.tokenizer, vocab_size=vocab, clusters=len(names),
                        tokens=int(sum(meta["tokens"].values())), documents=int(sum(meta["documents"].values())),
                        parts=sum(len(v) for v in parts.values()), dtype=meta["dtype"])


def chunk_marker(index: int) -> str:
    """A finished chunk's marker: its files' parts (written last, so a chunk with one is whole)."""
    return f"tokens/chunks/chunk-{index:05d}/_SUCCESS"


def finish_chunk(run: RunDir, index: int, files: list) -> None:
    run.write_json(chunk_marker(index), {"files": files})


def _chunk_items(run: RunDir, index: int, chunk: list[dict]) -> list[dict]:
    """The chunk's files as tokenizing tasks, each naming its parts `<chunk>-<file>`; what an earlier,
    killed attempt at the chunk left is removed first, so nothing of it is counted twice."""
    from climb_ray.artifacts import StageChangedError

    assignments = f"chunk-{index:05d}"
    if not run.exists("cluster/assignments", assignments):
        raise StageChangedError(f"cluster/assignments in {run.url()} has no {assignments} "
                                "(made by an older climb-ray); rerun with --redo cluster")
    for pattern in (f"tokens/*/{index:05d}-*.bin", f"tokens/*/{index:05d}-*.idx", f"tokens/docs/{index:05d}-*"):
        for path in run.fs.glob(run.path(pattern)):
            run.fs.rm(path)
    return [{"chunk": index, "stem": f"{index:05d}-{j:05d}", "file": f["file"], "name": f["name"],
             "assignments": run.url("cluster/assignments", assignments)} for j, f in enumerate(chunk)]


def _tokenizer(cfg: Config, run: RunDir, files: list[tuple[str, str]], progress: log.Progress):
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
        progress.note(f"training a {cfg.tokens.vocab_size}-id BPE on {min(n_docs, cfg.tokens.train_docs):,} documents")
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

    def describe(self) -> str:
        return (f"{self.tokens} tokens of {self.documents} documents in {self.clusters} clusters "
                f"({self.clusters if self.parts is None else self.parts} parts, {self.dtype}), tokenizer "
                f"{self.tokenizer} with {self.vocab_size} ids -> tokens/")
