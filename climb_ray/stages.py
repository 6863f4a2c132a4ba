"""What each pipeline stage does, start to finish; pipeline.py decides which ones run."""

from __future__ import annotations

import dataclasses
import io

import numpy as np

from climb_ray.artifacts import RunDir
from climb_ray.config import Config
from climb_ray.corpus import CorpusError, SkipCounts, check_unique_ids, list_files


def corpus_stage(cfg: Config, run: RunDir) -> dict:
    """Read the whole corpus once: per-file counts in corpus/files.parquet, totals in stats.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from climb_ray.adapters.ray_data import scan_corpus

    rows = scan_corpus(list_files(cfg.corpus.paths, cfg.corpus.format), cfg.corpus)
    check_unique_ids(rows, cfg.corpus)
    for row in rows:
        del row["id_hashes"]
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    run.write_bytes("corpus/files.parquet", buffer.getvalue())
    skips = SkipCounts()
    for row in rows:
        skips.add(SkipCounts(**{k: row[f"skipped_{k}"] for k in dataclasses.asdict(skips)}))
    if cfg.corpus.label_field:
        run.write_json("corpus/labels.json", gather_labels(rows, cfg.corpus.label_field))
    stats = {
        "files": len(rows),
        "documents": sum(r["documents"] for r in rows),
        "chars": sum(r["chars"] for r in rows),
        "skipped": skips.total,
        "skipped_by_reason": dataclasses.asdict(skips),
    }
    run.write_json("corpus/stats.json", stats)
    check_yield(stats, cfg)
    return stats


SKIP_HINTS = {"empty": "corpus.min_chars", "not_text": "corpus.text_field", "missing_field": "corpus.text_field",
              "not_utf8": "the files' encoding or compression", "bad_json": "corpus.format",
              "too_long": "corpus.max_chars", "broken_file": "the files (truncated or corrupt)",
              "missing_label": "corpus.label_field", "bad_label": "corpus.label_field",
              "bad_token_ids": "corpus.token_ids_field"}


def check_yield(stats: dict, cfg: Config) -> None:
    """CorpusError when the corpus gave no documents, or lost more than corpus.max_skip_share of its
    rows to one skip reason (its counts are in corpus/stats.json for a look)."""
    by_row = {k: v for k, v in stats["skipped_by_reason"].items() if k != "broken_file"}  # that one counts files
    rows = stats["documents"] + sum(by_row.values())
    reasons = ", ".join(f"{k} {v}" for k, v in stats["skipped_by_reason"].items() if v) or "none"
    if stats["documents"] == 0:
        raise CorpusError(f"corpus.paths={cfg.corpus.paths!r} gave 0 documents from {stats['files']} files "
                          f"(skipped rows: {reasons}); check the paths, corpus.format and corpus.text_field")
    worst, count = max(by_row.items(), key=lambda kv: kv[1])
    if count > cfg.corpus.max_skip_share * rows and cfg.corpus.max_skip_share < 1:
        raise CorpusError(f"corpus: {count} of {rows} rows skipped as {worst} (more than corpus.max_skip_share="
                          f"{cfg.corpus.max_skip_share:g}; all skips: {reasons}); check {SKIP_HINTS[worst]}, or set "
                          "corpus.max_skip_share=1 to go on with what is left")


def gather_labels(rows: list[dict], field: str) -> dict:
    """corpus/labels.json: every label with its documents, sorted (numbers as numbers); CorpusError when
    one file has integer labels and another string labels, or no file has any."""
    import json

    from climb_ray.corpus import CorpusError

    kinds = {r["label_kind"]: r["file"] for r in rows if r["label_kind"]}
    if len(kinds) > 1:
        raise CorpusError(f"corpus.label_field={field!r}: {kinds['integer']!r} has integer labels and "
                          f"{kinds['string']!r} string labels; labels must be all integers or all strings")
    if not kinds:
        raise CorpusError(f"corpus.label_field={field!r}: no document has a label")
    counts: dict = {}
    for row in rows:
        for label, documents in json.loads(row["labels"]):
            counts[label] = counts.get(label, 0) + documents
    return {"field": field, "kind": next(iter(kinds)), "labels": [[k, counts[k]] for k in sorted(counts)]}


def plan_chunks(files: list[dict], chunk_docs: int) -> list[list[dict]]:
    """Consecutive whole files grouped into chunks of about `chunk_docs` documents (empty files dropped)."""
    chunks: list[list[dict]] = [[]]
    count = 0
    for f in (f for f in files if f["documents"] > 0):
        if count >= chunk_docs:
            chunks.append([])
            count = 0
        chunks[-1].append(f)
        count += f["documents"]
    return [c for c in chunks if c]


def corpus_files(run: RunDir) -> list[dict]:
    import pyarrow.parquet as pq

    with run.fs.open(run.path("corpus/files.parquet"), "rb") as src:
        return pq.read_table(src, columns=["file", "name", "documents"]).to_pylist()


def embed_chunks(run: RunDir) -> list[str]:
    return [name for name in run.listdir("embed") if name.startswith("chunk-")]


def embed_stage(cfg: Config, run: RunDir) -> dict:
    """Embed every document, one chunk of files at a time; a chunk with _SUCCESS is never redone."""
    from climb_ray.adapters.ray_data import embed_files

    if cfg.corpus.label_field:  # pre-clustered: the labels are the clusters
        return {"documents": 0, "chunks": 0, "chunks_reused": 0, "model": "", "max_tokens": 0,
                "label_field": cfg.corpus.label_field}
    chunks = plan_chunks(corpus_files(run), cfg.embed.chunk_docs)
    reused = 0
    for index, chunk in enumerate(chunks):
        folder = f"embed/chunk-{index:05d}"
        if run.exists(folder, "_SUCCESS"):
            reused += 1
            continue
        run.clear_stage(folder)  # a chunk killed half-way starts again from nothing
        files = [(f["file"], f["name"]) for f in chunk]
        embed_files(files, cfg.corpus, cfg.embed, cfg.cluster.quality_scorer, run.url(folder), cfg.resources.device)
        run.write_text(f"{folder}/_SUCCESS", "done\n")
    documents = sum(f["documents"] for chunk in chunks for f in chunk)
    return {"documents": documents, "chunks": len(chunks), "chunks_reused": reused,
            "model": cfg.embed.model, "max_tokens": cfg.embed.max_tokens}


def cluster_stage(cfg: Config, run: RunDir) -> dict:
    """k-means on a sample, statistics and assignment of every document, pruning, merging, report."""
    from climb_ray.adapters import ray_cluster as rc
    from climb_ray.cluster import merge, prune
    from climb_ray.cluster_report import build_report, report_png

    if cfg.corpus.label_field:
        return label_cluster_stage(cfg, run)
    c, embed_url = cfg.cluster, run.url("embed")
    n_docs = run.read_json("corpus/stats.json")["documents"]
    sample = rc.sample_embeddings(embed_url, n_docs, c.fit_sample, cfg.seed)
    centroids = rc.fit_centroids(sample, c.k_init, backend=c.backend, niter=c.niter, seed=cfg.seed)
    buffer = io.BytesIO()
    np.save(buffer, centroids)
    run.write_bytes("cluster/centroids.npy", buffer.getvalue())
    stats = rc.cluster_statistics(embed_url, centroids)
    kept = prune(stats, c.prune_threshold)
    super_of = merge(centroids, kept, distance=c.merge_distance, n_super=c.n_super_clusters,
                     documents=stats.documents)
    run.clear_stage("cluster/assignments")
    for chunk in embed_chunks(run):  # assignments keep the embed chunks: the tokens stage resumes by chunk
        rc.write_assignments(run.url("embed", chunk), centroids, super_of, run.url("cluster/assignments", chunk))
    n_super = int(super_of.max()) + 1
    samples = rc.sample_texts(run.url("cluster/assignments"), n_super, c.report_docs, n_docs, cfg.seed)
    report = build_report(stats, super_of, c.prune_threshold, samples)
    run.write_json("cluster/clusters.json", report)
    run.write_bytes("cluster/clusters.png", report_png(report))
    pruned_docs = int(stats.documents[super_of < 0].sum())
    return {"k_init": c.k_init, "fit_documents": int(len(sample)), "clusters_pruned": int((super_of < 0).sum()),
            "documents_pruned": pruned_docs, "super_clusters": n_super,
            "names": [s["name"] for s in report["super_clusters"]]}


MAX_LABELS = 1000  # a pre-clustered corpus with more labels than this is more likely labelled by document


def label_cluster_stage(cfg: Config, run: RunDir) -> dict:
    """A pre-clustered corpus (corpus.label_field): each label, in sorted order, is a super-cluster;
    the assignments and the report are written as the k-means path writes them."""
    from climb_ray.adapters import ray_cluster as rc
    from climb_ray.adapters import ray_labels as rl
    from climb_ray.cluster_report import build_report, report_png
    from climb_ray.corpus import CorpusError

    labels = [label for label, _ in run.read_json("corpus/labels.json")["labels"]]
    if len(labels) > MAX_LABELS:
        raise CorpusError(f"corpus.label_field={cfg.corpus.label_field!r} has {len(labels)} different labels "
                          f"(e.g. {labels[:3]!r}), more than {MAX_LABELS} super-clusters: is it a per-document field?")
    index_of = {str(label): i for i, label in enumerate(labels)}
    tokenizer = None
    if cfg.corpus.token_ids_field:  # the report shows token-ID documents decoded (their first ids only)
        from climb_ray.tokens import pretrained_tokenizer

        tokenizer = pretrained_tokenizer(cfg.tokens.tokenizer)[0].to_str()
    run.clear_stage("cluster/assignments")
    for index, chunk in enumerate(plan_chunks(corpus_files(run), cfg.embed.chunk_docs)):
        rl.write_label_assignments([(f["file"], f["name"]) for f in chunk], cfg.corpus, index_of,
                                   cfg.cluster.quality_scorer, run.url("cluster/assignments", f"chunk-{index:05d}"),
                                   tokenizer)
    k, n_docs = len(labels), run.read_json("corpus/stats.json")["documents"]
    stats = rl.label_statistics(run.url("cluster/assignments"), k)
    samples = rc.sample_texts(run.url("cluster/assignments"), k, cfg.cluster.report_docs, n_docs, cfg.seed)
    report = build_report(stats, np.arange(k), 0.0, samples, labels=labels, quality=not cfg.corpus.token_ids_field)
    run.write_json("cluster/clusters.json", report)
    run.write_bytes("cluster/clusters.png", report_png(report))
    return {"k_init": 0, "fit_documents": 0, "clusters_pruned": 0, "documents_pruned": 0, "super_clusters": k,
            "names": [s["name"] for s in report["super_clusters"]], "label_field": cfg.corpus.label_field}


def tokens_stage(cfg: Config, run: RunDir) -> dict:
    """Tokenizer (trained or loaded), then each chunk of files tokenized into per-cluster shards
    (a chunk with _SUCCESS is not redone), then the chunks joined into tokens/<cluster>.bin."""
    import os
    import tempfile

    import pyarrow.parquet as pq

    from climb_ray import tokens as tk
    from climb_ray.adapters import ray_tokens as rt

    chunks = plan_chunks(corpus_files(run), cfg.embed.chunk_docs)
    tok, eot_token, tok_json = _tokenizer(cfg, run, [(f["file"], f["name"]) for c in chunks for f in c])
    eot, vocab = tk.eot_id(tok, eot_token), tok.get_vocab_size()
    dtype = tk.shard_dtype(vocab)
    names = [tk.cluster_name(i) for i in range(len(run.read_json("cluster/clusters.json")["super_clusters"]))]
    folders = [f"tokens/parts/chunk-{index:05d}" for index in range(len(chunks))]
    for chunk, folder in zip(chunks, folders):
        if run.exists(folder, "_SUCCESS"):
            continue
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


def _tokenizer(cfg: Config, run: RunDir, files: list[tuple[str, str]]):
    """(tokenizer, its end-of-text token, its JSON): the BPE trained once (kept in tokens/) or a loaded one."""
    from tokenizers import Tokenizer

    from climb_ray import tokens as tk
    from climb_ray.adapters import ray_tokens as rt

    if cfg.tokens.tokenizer != "bpe":
        tok, eot_token = tk.pretrained_tokenizer(cfg.tokens.tokenizer)
        run.write_text("tokens/tokenizer.json", tok.to_str())
        return tok, eot_token, tok.to_str()
    if not run.exists("tokens/tokenizer.json"):
        n_docs = run.read_json("corpus/stats.json")["documents"]
        texts = rt.sample_training_texts(files, cfg.corpus, n_docs, cfg.tokens.train_docs, cfg.seed)
        run.write_text("tokens/tokenizer.json", tk.train_bpe(texts, cfg.tokens.vocab_size).to_str())
    tok_json = run.read_bytes("tokens/tokenizer.json").decode("utf-8")
    return Tokenizer.from_str(tok_json), tk.EOT, tok_json
