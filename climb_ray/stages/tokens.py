"""The tokens stage: the tokenizer (trained or loaded), then each chunk of files tokenized into
per-super-cluster shards, joined into tokens/<cluster>.bin."""

from __future__ import annotations

from climb_ray import log
from climb_ray.artifacts import CLUSTERS, CORPUS_STATS, RunDir, TOKENIZER
from climb_ray.config import Config
from climb_ray.stages.corpus import plan_chunks, corpus_files


def tokens_stage(cfg: Config, run: RunDir) -> dict:
    """Tokenizer (trained or loaded), then each chunk of files tokenized into per-cluster shards
    (a chunk with _SUCCESS is not redone), then the chunks joined into tokens/<cluster>.bin."""
    chunks = plan_chunks(corpus_files(run), cfg.embed.chunk_docs)
    documents = sum(f["documents"] for chunk in chunks for f in chunk)
    with log.Progress(log.get(__name__), "tokens", documents, "documents") as progress:
        return _tokenize(cfg, run, chunks, progress)


def _tokenize(cfg: Config, run: RunDir, chunks: list, progress: log.Progress) -> dict:
    import os
    import tempfile

    import pyarrow.parquet as pq

    from climb_ray import tokens as tk
    from climb_ray.adapters import ray_tokens as rt

    tok, eot_token, tok_json = _tokenizer(cfg, run, [(f["file"], f["name"]) for c in chunks for f in c], progress)
    eot, vocab = tk.eot_id(tok, eot_token), tok.get_vocab_size()
    dtype = tk.shard_dtype(vocab)
    names = [tk.cluster_name(i) for i in range(len(run.read_json(CLUSTERS)["super_clusters"]))]
    folders = [f"tokens/parts/chunk-{index:05d}" for index in range(len(chunks))]
    for index, (chunk, folder) in enumerate(zip(chunks, folders)):
        if run.exists(folder, "_SUCCESS"):
            progress.skip(sum(f["documents"] for f in chunk))
            continue
        progress.note(f"chunk {index + 1} of {len(chunks)}")
        run.clear_stage(folder)
        if not run.exists("cluster/assignments", folder.rsplit("/", 1)[1]):
            from climb_ray.artifacts import StageChangedError

            raise StageChangedError(f"cluster/assignments in {run.url()} has no {folder.rsplit('/', 1)[1]} "
                                    "(made by an older climb-ray); rerun with --redo cluster")
        table = pq.read_table(run.path("cluster/assignments", folder.rsplit("/", 1)[1]), filesystem=run.fs,
                              columns=["doc_id", "super_cluster"])
        lookup = dict(zip(table.column("doc_id").to_pylist(), table.column("super_cluster").to_pylist()))
        run.fs.makedirs(run.path(folder), exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            rt.tokenize_chunk([(f["file"], f["name"]) for f in chunk], cfg.corpus, lookup, tok_json,
                              eot=eot, dtype=dtype, out_dir=tmp, vocab_size=vocab)
            for name in os.listdir(tmp):
                run.fs.put(os.path.join(tmp, name), run.path(folder, name))
        run.write_text(f"{folder}/_SUCCESS", "done\n")
        progress.advance(sum(f["documents"] for f in chunk))
    progress.note("joining the chunks' shards")
    shards = tk.concat_parts(run.fs, [run.path(f) for f in folders], run.path("tokens"), names, dtype)
    run.fs.makedirs(run.path("tokens/docs"), exist_ok=True)
    for folder in folders:  # doc_id, super_cluster, n_tokens per chunk: the export plans with them
        moved = run.path("tokens/docs", f"{folder.rsplit('/', 1)[1]}.parquet")
        if run.exists(folder, "docs.parquet"):
            run.fs.mv(run.path(folder, "docs.parquet"), moved)
        elif not run.fs.exists(moved):  # neither here nor moved (a kill between the two mv steps cannot do that)
            raise FileNotFoundError(f"{run.url(folder, 'docs.parquet')} is missing; rerun with --redo tokens")
    meta = tk.write_meta(run.fs, run.path("tokens"), dtype=dtype, eot=eot, vocab_size=vocab,
                         tokenizer=cfg.tokens.tokenizer, shards=shards, names=names)
    run.clear_stage("tokens/parts")
    return {"tokenizer": cfg.tokens.tokenizer, "vocab_size": vocab, "clusters": len(names),
            "tokens": int(sum(meta["tokens"].values())), "documents": int(sum(meta["documents"].values())),
            "dtype": meta["dtype"]}


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


def describe(info: dict) -> str:
    return (f"{info['tokens']} tokens of {info['documents']} documents in {info['clusters']} shards "
            f"({info['dtype']}), tokenizer {info['tokenizer']} with {info['vocab_size']} ids -> tokens/")
