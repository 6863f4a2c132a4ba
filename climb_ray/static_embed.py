"""Static embeddings (model2vec): one vector per token, distilled once from a sentence-transformers encoder;
a document's vector is the mean of its tokens' vectors, L2-normalised.

Tens of times faster than the encoder on CPU, with coarser clusters (docs/benchmarks.md): a trade-off for
machines without GPUs or very large corpora (embed.encoder=static), never the paper's setting. No Ray here.
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
    partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    static.save_pretrained(partial)
    try:
        partial.rename(folder)  # atomic: a reader sees the whole model or none
    except OSError:  # another process got there first: theirs is the same model
        shutil.rmtree(partial, ignore_errors=True)
    return str(folder)


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
