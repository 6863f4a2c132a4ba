"""The embed stage: every document encoded, one chunk of files at a time (a finished chunk is kept)."""

from __future__ import annotations

from dataclasses import dataclass

from climb_ray import log
from climb_ray.artifacts import CHUNK, EMBED, SUCCESS, RunDir, Summary
from climb_ray.config import Config
from climb_ray.stages.corpus import plan_chunks, corpus_files


def embed_chunks(run: RunDir) -> list[str]:
    return [name for name in run.listdir(EMBED) if name.startswith(CHUNK.split("{")[0])]


def embed_stage(cfg: Config, run: RunDir) -> EmbedResult:
    """Embed every document, one chunk of files at a time; a chunk with _SUCCESS is never redone."""
    from climb_ray.adapters.ray_data import embed_files, static_encoder

    if cfg.corpus.label_field:  # pre-clustered: the labels are the clusters
        return EmbedResult(label_field=cfg.corpus.label_field)
    chunks = plan_chunks(corpus_files(run), cfg.embed.chunk_docs)
    reused, documents = 0, sum(f["documents"] for chunk in chunks for f in chunk)
    static = None
    if cfg.embed.encoder == "static" and any(not run.exists(EMBED, CHUNK.format(i), SUCCESS)
                                             for i in range(len(chunks))):  # one model for every chunk
        static = static_encoder([(f["file"], f["name"]) for chunk in chunks for f in chunk], documents, cfg.corpus,
                                cfg.embed, cfg.resources.device)
    with log.Progress(log.get(__name__), "embed", documents, "documents") as progress:
        for index, chunk in enumerate(chunks):
            folder = f"{EMBED}/{CHUNK.format(index)}"
            if not run.exists(folder, SUCCESS):
                progress.note(f"chunk {index + 1} of {len(chunks)}")
                run.clear_stage(folder)  # a chunk killed half-way starts again from nothing
                files = [(f["file"], f["name"]) for f in chunk]
                embed_files(files, cfg.corpus, cfg.embed, cfg.cluster.quality_scorer, run.url(folder),
                            cfg.resources.device, static)
                run.write_text(f"{folder}/{SUCCESS}", "done\n")
                progress.advance(sum(f["documents"] for f in chunk))
            else:
                reused += 1
                progress.skip(sum(f["documents"] for f in chunk))
    return EmbedResult(documents=documents, chunks=len(chunks), chunks_reused=reused, model=cfg.embed.model,
                       encoder=cfg.embed.encoder, max_tokens=cfg.embed.max_tokens)


@dataclass
class EmbedResult(Summary):
    documents: int = 0
    chunks: int = 0
    chunks_reused: int = 0  # chunks a killed run had finished
    model: str = ""
    encoder: str = ""
    max_tokens: int = 0
    label_field: str = ""  # set: a pre-clustered corpus, nothing embedded

    def describe(self) -> str:
        if self.label_field:
            return f"not needed: the corpus is pre-clustered (corpus.label_field={self.label_field!r})"
        static = " (static embeddings)" if self.encoder == "static" else ""
        return (f"{self.documents} documents embedded with {self.model}{static} ({self.chunks} chunk(s), "
                f"{self.chunks_reused} reused) -> embed/")
