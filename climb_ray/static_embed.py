"""Static embeddings (model2vec): one vector per token, distilled once from a sentence-transformers encoder;
a document's vector is the mean of its tokens' vectors, L2-normalised.

Tens of times faster than the encoder on CPU; fitted to the encoder on a sample of the corpus, its clusters
come close to the encoder's (docs/benchmarks.md): a trade-off for machines without GPUs or very large corpora
(embed.encoder=static), never the paper's setting. No Ray here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import shutil
from pathlib import Path

import numpy as np

from climb_ray import log
from climb_ray.config import ConfigError
from climb_ray.embed import resolve_model

LOG = log.get(__name__)
PCA_DIMS = 256  # dimensions the distilled token vectors are reduced to (model2vec's default)
# no frequency down-weighting (model2vec's default, SIF 1e-4, ranks tokens by vocabulary order): without it
# the demo's sources are recovered better (purity 0.82 vs 0.74, docs/benchmarks.md)
SIF_COEFFICIENT = None
FIT_RIDGE = 1e-4  # fit_to_encoder's ridge, per document (1e-4 and 1e-3 held out alike, docs/benchmarks.md)


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "climb_ray" / "model2vec"


def is_static_model(path: str) -> bool:
    """True for a local folder holding a model2vec model (its config.json says so)."""
    config = Path(path) / "config.json"
    return config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("model_type") == "model2vec"


def cache_key(source: str, pca_dims: int) -> str:
    """Names one distillation: the source (with its files' sizes and modification times when a folder: a model
    saved again in place is distilled again), the settings, model2vec's version. A hub name is taken as it is."""
    from model2vec.version import __version__

    files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(source).iterdir() if p.is_file()) \
        if os.path.isdir(source) else []
    text = json.dumps([source, files, pca_dims, SIF_COEFFICIENT, __version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def static_model_folder(model: str, *, cache_dir: str | Path | None = None, pca_dims: int = PCA_DIMS,
                        trust_remote_code: bool = False) -> str:
    """A local folder with a model2vec model for `model`: the folder itself when it holds one, else the one
    distilled from that sentence-transformers model (packaged name, path or HF name), made on the first call
    and kept under cache_dir (default ~/.cache/climb_ray/model2vec)."""
    if importlib.util.find_spec("model2vec") is None:
        raise ConfigError("embed.encoder='static' needs model2vec: pip install -e '<climb_ray checkout>[fast]' "
                          "on every node")
    source = resolve_model(model)
    if os.path.isdir(source) and is_static_model(source):
        return source
    folder = Path(cache_dir or cache_root()) / cache_key(source, pca_dims)
    if is_static_model(str(folder)):
        return str(folder)
    from model2vec.distill import distill

    LOG.info(f"embed: distilling static embeddings from {model} (once; minutes on a CPU) -> {folder}")
    try:
        static = distill(model_name=source, pca_dims=pca_dims, sif_coefficient=SIF_COEFFICIENT,
                         trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ConfigError(f"embed.model={model!r}: cannot distill static embeddings from it "
                          f"({str(err).splitlines()[0]})") from None
    _save(static, folder)
    return str(folder)


def _save(static, folder: Path) -> None:
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    static.save_pretrained(partial)
    try:
        partial.rename(folder)  # atomic: a reader sees the whole model or none
    except OSError:  # another process got there first: theirs is the same model
        shutil.rmtree(partial, ignore_errors=True)


def load_static_model(model: str, *, cache_dir: str | Path | None = None, trust_remote_code: bool = False):
    """The model2vec StaticModel for `model` (see static_model_folder), offline."""
    from model2vec import StaticModel

    return StaticModel.from_pretrained(static_model_folder(model, cache_dir=cache_dir,
                                                           trust_remote_code=trust_remote_code))


class StaticEmbedder:
    """The Embedder interface (token_ids, embed_ids, embed, dim, prompt_tokens) over a model2vec StaticModel."""

    prompt_tokens = 0  # static models take no document prompt

    def __init__(self, static, *, max_tokens: int = 256):
        self.static = static
        self.static.tokenizer.no_truncation()  # token_ids counts every token; embed_ids cuts to max_tokens
        self.max_tokens = max_tokens
        self.dim = int(static.dim)
        self.table = np.asarray(static.embedding, dtype=np.float32)  # token vectors (float16 on disk)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, untruncated, without special tokens (unknown tokens dropped, as model2vec does)."""
        return self.static.tokenize(texts)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, D) float32, each row of unit length (all zeros for a text without a known token)."""
        return self.embed_ids(self.token_ids(texts))

    def embed_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Embed token_ids' output; long ones are cut to max_tokens."""
        from scipy.sparse import csr_matrix

        cut = [x[: self.max_tokens] for x in ids]
        lengths = np.array([len(x) for x in cut], dtype=np.int64)
        flat = np.fromiter(itertools.chain.from_iterable(cut), dtype=np.int64, count=int(lengths.sum()))
        rows = flat if self.static.token_mapping is None else self.static.token_mapping[flat]
        weights = np.ones(len(flat), np.float32) if self.static.weights is None else self.static.weights[flat]
        # (texts x vocabulary) token counts times the token vectors: each text's sum (the mean's direction)
        counts = csr_matrix((weights.astype(np.float32), rows, np.concatenate([[0], np.cumsum(lengths)])),
                            shape=(len(ids), len(self.table)))
        out = np.asarray(counts @ self.table, dtype=np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)



def fit_to_encoder(table: np.ndarray, ids: list[list[int]], targets: np.ndarray, *,
                   ridge: float = FIT_RIDGE) -> np.ndarray:
    """Token vectors mapped so that a document's vector points where the encoder's does (model2vec's tokenlearn,
    reduced to a linear map, which held out better than training each token's vector or weight on a sample of a
    few thousand documents): the ridge least-squares map (with a bias) from the mean token vector of each document
    (its rows `ids` of `table` (V, D)) to the encoder's unit vector of it (`targets` (N, E)), folded into the table.
    Returns the (V, E) table; a document's vector stays the normalised sum of its tokens' rows."""
    from scipy.sparse import csr_matrix

    kept = [i for i, x in enumerate(ids) if x]  # a document without a known token says nothing
    if not kept:
        raise ConfigError(f"embed.static_fit_docs: none of the {len(ids)} sampled documents has a token the static "
                          "model knows; set embed.static_fit_docs=0 for the unfitted vectors")
    lengths = np.array([len(ids[i]) for i in kept])
    flat = np.fromiter(itertools.chain.from_iterable(ids[i] for i in kept), dtype=np.int64, count=int(lengths.sum()))
    counts = csr_matrix((np.repeat(1.0 / lengths, lengths), flat, np.concatenate([[0], np.cumsum(lengths)])),
                        shape=(len(kept), len(table)))
    means = np.hstack([np.asarray(counts @ table, dtype=np.float64), np.ones((len(kept), 1))])
    y = np.asarray(targets, np.float64)[kept]
    y /= np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
    fit = np.linalg.solve(means.T @ means + ridge * len(kept) * np.eye(means.shape[1]), means.T @ y)
    return (np.asarray(table, np.float64) @ fit[:-1] + fit[-1]).astype(np.float32)


def fitted_static_model(static, texts: list[str], encode, *, source: str, max_tokens: int,
                        cache_dir: str | Path | None = None):
    """`static` with its token vectors fitted to the encoder on `texts` (a sample of the corpus: fitted on another
    corpus it does not carry over, docs/benchmarks.md). encode(texts) -> the encoder's (N, E) vectors, called only
    when this fit is not cached yet (kept under cache_dir, named by `source`, the texts and the settings)."""
    from model2vec import StaticModel

    digest = hashlib.sha256(json.dumps([source, max_tokens, FIT_RIDGE]).encode())
    for text in texts:
        digest.update(hashlib.sha256(text.encode()).digest())
    folder = Path(cache_dir or cache_root()) / f"fit-{digest.hexdigest()[:16]}"
    if not is_static_model(str(folder)):
        LOG.info(f"embed: fitting the static token vectors to the encoder on {len(texts)} documents -> {folder}")
        embedder = StaticEmbedder(static, max_tokens=max_tokens)
        ids = [x[:max_tokens] for x in embedder.token_ids(texts)]
        if static.token_mapping is not None:
            ids = [list(static.token_mapping[x]) for x in ids]
        table = fit_to_encoder(embedder.table, ids, encode(texts))
        fitted = StaticModel(vectors=table, tokenizer=static.tokenizer, config=static.config, normalize=True,
                             weights=static.weights, token_mapping=static.token_mapping)
        _save(fitted, folder)
    return StaticModel.from_pretrained(str(folder))
