"""The embed stage: every document encoded, the unfinished chunks in one pass (a finished chunk is kept)."""

from __future__ import annotations

from dataclasses import dataclass

from climb_ray import log
from climb_ray.artifacts import CHUNK, EMBED, SUCCESS, RunDir, StageChangedError, Summary
from climb_ray.config import Config
from climb_ray.stages.corpus import plan_chunks, corpus_files


def chunk_folders(run: RunDir) -> list[str]:
    """The names of embed/'s chunk folders."""
    return [name for name in run.listdir(EMBED) if name.startswith(CHUNK.split("{")[0])]


def embed_stage(cfg: Config, run: RunDir) -> EmbedResult:
    """Embed every document: the chunks not finished yet all in one pass through one encoder pool; a chunk is
    marked _SUCCESS as soon as all its documents are written, and a chunk with _SUCCESS is never redone."""
    from climb_ray.adapters.ray_data import embed_chunks, static_encoder

    if cfg.corpus.label_field:  # pre-clustered: the labels are the clusters
        return EmbedResult(label_field=cfg.corpus.label_field)
    chunks = plan_chunks(corpus_files(run), cfg.embed.chunk_docs)
    documents = sum(f["documents"] for chunk in chunks for f in chunk)
    folders = {i: f"{EMBED}/{CHUNK.format(i)}" for i in range(len(chunks))}
    pending = [i for i in range(len(chunks)) if not run.exists(folders[i], SUCCESS)]
    with log.Progress(log.get(__name__), "embed", documents, "documents") as progress:
        progress.skip(sum(f["documents"] for i in set(range(len(chunks))) - set(pending) for f in chunks[i]))
        if pending:  # else a run killed after its last chunk: no pool to start
            static = None
            if cfg.embed.encoder == "static":  # one model for every chunk
                static = static_encoder([(f["file"], f["name"]) for chunk in chunks for f in chunk], documents,
                                        cfg.corpus, cfg.embed, cfg.resources.device)
            for i in pending:
                run.clear_stage(folders[i])  # a chunk killed half-way starts again from nothing
            progress.note(f"{len(pending)} of {len(chunks)} chunks")
            expected = {i: sum(f["documents"] for f in chunks[i]) for i in pending}
            written = dict.fromkeys(pending, 0)
            for chunk, rows in embed_chunks({i: [(f["file"], f["name"]) for f in chunks[i]] for i in pending},
                                            {i: run.url(folders[i]) for i in pending}, cfg.corpus, cfg.embed,
                                            cfg.cluster.quality_scorer, cfg.resources.device, static):
                progress.advance(rows)
                written[chunk] += rows
                if written[chunk] > expected[chunk]:
                    if run.exists(folders[chunk], SUCCESS):
                        run.fs.rm(run.path(folders[chunk], SUCCESS))
                    raise _changed(chunk, written[chunk], expected[chunk], chunks[chunk])
                if written[chunk] == expected[chunk]:
                    run.write_text(f"{folders[chunk]}/{SUCCESS}", "done\n")
            for i in (i for i in pending if written[i] != expected[i]):
                raise _changed(i, written[i], expected[i], chunks[i])
    return EmbedResult(documents=documents, chunks=len(chunks), chunks_reused=len(chunks) - len(pending),
                       model=cfg.embed.model, encoder=cfg.embed.encoder, max_tokens=cfg.embed.max_tokens)


def _changed(index: int, written: int, expected: int, chunk: list[dict]) -> StageChangedError:
    """A chunk whose files gave another number of documents than the corpus stage counted in them."""
    return StageChangedError(f"embed: chunk {index} ({', '.join(f['name'] for f in chunk[:3])}"
                             f"{', ...' if len(chunk) > 3 else ''}) gave {written:,} documents where the corpus "
                             f"stage counted {expected:,}: the corpus changed since; rerun with --redo corpus")


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
