"""Ray Data pipelines over the corpus: the scan (corpus stage) and the embedding pass (embed stage).

The reading is climb_ray.corpus, the encoding climb_ray.embed, the scores climb_ray.quality;
this module only wires them into Ray Data.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray
from ray.data import ActorPoolStrategy

from climb_ray.config import CorpusConfig, EmbedConfig
from climb_ray.corpus import CorpusError, SkipCounts, iter_records, scan_file

READ_ROWS = 1024  # documents per block coming out of the readers
HEAD_CHARS = 600  # the start of each document kept for the cluster report
READ_CPUS = 0.25  # CPUs reserved by each reader task


def _scan_or_report(url: str, name: str, cfg: CorpusConfig) -> dict:
    """scan_file, with a corpus error returned as data: Ray would bury it in a task traceback."""
    try:
        return {**scan_file(url, name, cfg), "error": ""}
    except CorpusError as err:
        zeros = {f"skipped_{k}": 0 for k in SkipCounts().__dict__}
        return {"file": url, "name": name, "documents": 0, "chars": 0, "label_kind": "", "labels": "[]", **zeros,
                "id_hashes": b"", "error": str(err)}


def scan_corpus(files: list[tuple[str, str]], cfg: CorpusConfig) -> list[dict]:
    """Read every corpus file through in parallel (one Ray task per file); one summary row each.

    Raises CorpusError naming the first bad file (and how many more there are) after all are read.
    """
    items = [{"file": url, "name": name} for url, name in files]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    rows = ds.map(lambda row: _scan_or_report(row["file"], row["name"], cfg)).take_all()
    rows.sort(key=lambda row: row["file"])
    errors = [error for error in (row.pop("error") for row in rows) if error]
    if errors:
        more = f" (and {len(errors) - 1} more files with errors)" if len(errors) > 1 else ""
        raise CorpusError(errors[0] + more)
    return rows


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)  # never a 2-D array, also for token-ID lists of one length
    out[:] = values
    return out


def read_documents(files: list[tuple[str, str]], cfg: CorpusConfig,
                   chunks: list[int] | None = None) -> ray.data.Dataset:
    """A dataset of (doc_id, text) streamed from the files; broken rows are skipped (the corpus
    stage has counted them). A token-ID corpus has `ids` (int64 arrays) instead of text; with
    corpus.label_field, `label` holds each document's label as a string; with `chunks` (one per file),
    `chunk` holds the chunk of each document's file."""
    column = "ids" if cfg.token_ids_field else "text"

    def read(batch: dict) -> dict:
        for url, name, chunk in zip(batch["file"], batch["name"], batch["chunk"]):
            rows: dict[str, list] = {"doc_id": [], column: [], "label": []}
            for doc_id, value, label in iter_records(str(url), str(name), cfg, SkipCounts()):
                rows["doc_id"].append(doc_id)
                rows[column].append(value)
                rows["label"].append(str(label))
                if len(rows["doc_id"]) == READ_ROWS:
                    yield _block(rows, bool(cfg.label_field), chunk)
                    rows = {key: [] for key in rows}
            if rows["doc_id"]:
                yield _block(rows, bool(cfg.label_field), chunk)

    def _block(rows: dict, labelled: bool, chunk) -> dict:
        out = {key: _objects(values) for key, values in rows.items() if key != "label" or labelled}
        if chunks is not None:
            out["chunk"] = np.full(len(rows["doc_id"]), int(chunk), dtype=np.int32)
        return out

    items = [{"file": url, "name": name, "chunk": -1 if chunks is None else int(c)}
             for (url, name), c in zip(files, [None] * len(files) if chunks is None else chunks, strict=True)]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    # A quarter CPU per reader: the readers are light, and differing resources keep Ray Data from
    # fusing them into the encoder actors, so the blocks of one big file spread over every actor.
    return ds.map_batches(read, batch_size=1, batch_format="numpy", num_cpus=READ_CPUS)


class EncodeActor:
    """One encoder per actor: (doc_id, text) batches -> doc_id, embedding, n_tokens, quality, text_head (and the
    batch's `chunk` column, when it has one, passed through)."""

    def __init__(self, embed: dict, scorer: str, static=None):
        from climb_ray.embed import Embedder
        from climb_ray.quality import load_scorer
        from climb_ray.static_embed import StaticEmbedder

        if static is not None:  # embed.encoder=static: the driver's model2vec model
            self.embedder = StaticEmbedder(static, max_tokens=embed["max_tokens"])
        else:
            threads = embed["threads"] or max(1, int(embed["cpus_per_actor"]))
            self.embedder = Embedder(embed["model"], max_tokens=embed["max_tokens"],
                                     batch_size=embed["batch_size"], dtype=embed["dtype"], threads=threads,
                                     trust_remote_code=embed["trust_remote_code"])
        self.scorer = load_scorer(scorer)

    def __call__(self, batch: dict) -> pa.Table:
        from climb_ray.quality import score

        texts = [str(t) for t in batch["text"]]
        ids = self.embedder.token_ids(texts)
        vectors = self.embedder.embed_ids(ids)
        dim = vectors.shape[1]
        return pa.table({
            "doc_id": pa.array([str(d) for d in batch["doc_id"]], pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
            "n_tokens": pa.array([len(x) - self.embedder.prompt_tokens for x in ids], pa.int32()),
            "quality": pa.array(score(self.scorer, texts), pa.float32()),
            "text_head": pa.array([t[:HEAD_CHARS] for t in texts], pa.string()),
            **({"chunk": pa.array(batch["chunk"], pa.int32())} if "chunk" in batch else {}),
        })


def encoder_pool(embed: EmbedConfig, device: str = "auto") -> dict:
    """map_batches arguments placing the encoder actors: one per GPU, or CPU actors on CPU clusters (and for
    the static encoder, which runs on CPU anywhere).

    On a cluster whose GPU workers are all scaled down (min 0), the pool starts with one GPU actor,
    which makes the autoscaler bring up a GPU node, and grows to one per GPU it can add."""
    from climb_ray.adapters.ray_runtime import cluster_gpus, use_gpus

    gpu, reachable = use_gpus(device)
    if gpu and embed.gpus_per_actor > 0 and embed.encoder != "static":  # static vectors: numpy on CPU actors
        size = embed.num_actors or max(1, int(reachable // embed.gpus_per_actor))
        if cluster_gpus() >= embed.gpus_per_actor * size:
            compute = ActorPoolStrategy(size=size)
        else:
            compute = ActorPoolStrategy(min_size=1, max_size=size)
        return {"compute": compute, "num_gpus": embed.gpus_per_actor, "num_cpus": embed.cpus_per_actor}
    # CPU actors: sized by the CPUs free now (a job's driver may hold some: --entrypoint-num-cpus),
    # always leaving room for a reader and a writer, or the pool would wait forever for blocks no reader
    # can make or no writer can take
    free = float(ray.available_resources().get("CPU", 0))
    size = embed.num_actors or max(1, int((free - 1) // max(embed.cpus_per_actor, 1e-3)))
    per_actor = min(embed.cpus_per_actor, max(free - 2 * READ_CPUS, 0.0) / size)
    return {"compute": ActorPoolStrategy(size=size), "num_cpus": int(per_actor * 1000) / 1000}


FIT_SEED = 0  # the static fit's sample does not move with the run's seed: one fit per corpus in the cache


def static_encoder(files: list[tuple[str, str]], documents: int, corpus: CorpusConfig, embed: EmbedConfig,
                   device: str = "auto"):
    """embed.encoder=static: the model2vec model, distilled (or found in the cache) here once and shipped to every
    actor; fitted to the encoder on embed.static_fit_docs documents of the corpus (`files`, `documents` in all),
    drawn by a hash of their ids so that a resumed run draws the same ones and finds its fit in the cache."""
    from climb_ray.embed import Embedder
    from climb_ray.export import doc_key
    from climb_ray.static_embed import fitted_static_model, load_static_model, static_model_folder

    static = load_static_model(embed.model, trust_remote_code=embed.trust_remote_code)
    wanted = embed.static_fit_docs
    if wanted <= 0:
        return static
    cut = min(1.0, 1.2 * wanted / max(documents, 1))  # one read of the corpus keeps about 1.2x the wanted

    sample = read_documents(files, corpus).filter(lambda row: doc_key(str(row["doc_id"]), FIT_SEED) < cut)
    rows = sorted((doc_key(str(row["doc_id"]), FIT_SEED), str(row["text"])) for row in sample.iter_rows())
    texts = [text for _, text in rows[:wanted]]
    encoder = Embedder(embed.model, max_tokens=embed.max_tokens, batch_size=embed.batch_size, dtype=embed.dtype,
                       device="cpu" if device == "cpu" else None, threads=embed.threads,
                       trust_remote_code=embed.trust_remote_code)
    return fitted_static_model(static, texts, encoder.embed, max_tokens=embed.max_tokens,
                               source=static_model_folder(embed.model, trust_remote_code=embed.trust_remote_code))


def embed_files(files: list[tuple[str, str]], corpus: CorpusConfig, embed: EmbedConfig, scorer: str,
                out_url: str, device: str = "auto", static=None) -> None:
    """Embed every document of `files` and write Parquet files (doc_id, embedding, ...) under out_url
    (with `static`, static_encoder's model): embed_chunks for one chunk (the benchmarks' entry point)."""
    for _ in embed_chunks({0: files}, {0: out_url}, corpus, embed, scorer, device, static):
        pass


def embed_chunks(files: dict[int, list[tuple[str, str]]], out_urls: dict[int, str], corpus: CorpusConfig,
                 embed: EmbedConfig, scorer: str, device: str = "auto", static=None):
    """Every chunk's files (chunk -> files) through one encoder pool, started once for all of them, so that
    chunks follow each other with no pool start and no drained pool between them; each of the writing
    tasks writes its block's rows as Parquet files (doc_id, embedding, n_tokens, quality, text_head)
    under its chunk's out_url. Yields (chunk, documents written) as blocks are written."""
    import dataclasses

    order = sorted(files)
    listed = [(f, c) for c in order for f in files[c]]
    kwargs = {"embed": dataclasses.asdict(embed), "scorer": scorer, "static": static}
    ds = read_documents([f for f, _ in listed], corpus, chunks=[c for _, c in listed])
    ds = ds.map_batches(EncodeActor, fn_constructor_kwargs=kwargs,
                        batch_size=max(embed.batch_size, 256), batch_format="numpy", **encoder_pool(embed, device))
    written = ds.map_batches(_write_by_chunk, fn_kwargs={"out_urls": out_urls}, batch_size=None,
                             batch_format="pyarrow", num_cpus=READ_CPUS)
    for row in written.iter_rows():
        yield int(row["chunk"]), int(row["documents"])


def _write_by_chunk(block: pa.Table, out_urls: dict[int, str]) -> pa.Table:
    """One block of encoded rows written under each of its chunks' out_url; how many rows per chunk. A file's
    name comes from its rows (first and last id, count: ids are unique), and it is written under a temporary
    name first (ignored by readers: leading underscore), then renamed: a task Ray retries replaces its file."""
    import hashlib
    import posixpath
    import uuid

    import fsspec
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    chunks = block.column("chunk").to_numpy()
    found, counts = np.unique(chunks, return_counts=True)
    for chunk in found:
        fs, root = fsspec.core.url_to_fs(out_urls[int(chunk)])
        fs.makedirs(root, exist_ok=True)
        rows = block.filter(pc.equal(block.column("chunk"), pa.scalar(int(chunk), pa.int32()))).drop_columns(["chunk"])
        ids = rows.column("doc_id")
        key = f"{ids[0].as_py()}\n{ids[-1].as_py()}\n{len(ids)}"
        temporary = posixpath.join(root, f"_tmp-{uuid.uuid4().hex}")
        pq.write_table(rows, temporary, filesystem=fs)
        name = hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
        fs.mv(temporary, posixpath.join(root, f"part-{name}.parquet"))
    return pa.table({"chunk": pa.array(found, pa.int32()), "documents": pa.array(counts, pa.int64())})
