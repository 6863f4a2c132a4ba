"""The tokenizer and the per-super-cluster token shards the proxies train on.

A cluster's tokens are its parts, `tokens/<cluster>/<chunk>-<file>.bin`: the documents of one corpus
file in that cluster as token ids, one after another, each followed by the end-of-text id (the
document boundary); the part's `.idx` holds the uint64 offset where each document starts. Read in
the order tokens/meta.json lists them, a cluster's parts are its documents in corpus order.
`tokens/meta.json` has the dtype, the end-of-text id, and the token and document counts and parts
of every cluster (the search's Dirichlet prior is their token shares).

With tokens.sample (the default) the parts hold only the proxies' sample of each cluster, while
meta["tokens"] and meta["documents"] stay each cluster's whole-corpus counts (climb_ray.token_sample).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import tempfile
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from climb_ray.artifacts import TOKENS_META

EOT = "<|endoftext|>"


def train_bpe(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer (tokenizers library) trained on `texts`, with EOT as id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def pretrained_tokenizer(name_or_path: str):
    """Any Hugging Face fast tokenizer by local path or hub name, as a `tokenizers.Tokenizer`,
    with its end-of-text token (eos, else sep, else a new EOT token)."""
    from transformers import AutoTokenizer

    from climb_ray.config import ConfigError
    from climb_ray.embed import resolve_model

    if name_or_path.endswith(".json") and os.path.isfile(name_or_path):
        return _tokenizer_file(name_or_path)
    try:
        hf = AutoTokenizer.from_pretrained(resolve_model(name_or_path))  # packaged names work offline
    except (OSError, ValueError) as err:
        raise ConfigError(f"tokens.tokenizer={name_or_path!r}: cannot load it ({err})") from None
    if not getattr(hf, "is_fast", False):
        raise ConfigError(f"tokens.tokenizer={name_or_path!r}: only fast (Rust) tokenizers are supported")
    tok = hf.backend_tokenizer
    eot = hf.eos_token or hf.sep_token
    if eot is None:
        tok.add_special_tokens([EOT])
        eot = EOT
    return tok, eot


def _tokenizer_file(path: str):
    """A `tokenizers` JSON file, with its end-of-text token (a usual name, else a new EOT token)."""
    from tokenizers import Tokenizer

    from climb_ray.config import ConfigError

    try:
        tok = Tokenizer.from_file(path)
    except Exception as err:  # the Rust side raises plain Exceptions
        raise ConfigError(f"tokens.tokenizer={path!r}: not a tokenizers JSON file ({err})") from None
    eot = next((t for t in (EOT, "</s>", "<eos>", "[SEP]") if tok.token_to_id(t) is not None), None)
    if eot is None:
        tok.add_special_tokens([EOT])
        eot = EOT
    return tok, eot


def eot_id(tok, eot: str = EOT) -> int:
    token_id = tok.token_to_id(eot)
    if token_id is None:
        raise ValueError(f"tokenizer has no end-of-text token {eot!r}")
    return int(token_id)


def shard_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def encode_docs(tok, texts: list[str], eot: int, dtype: np.dtype) -> list[np.ndarray]:
    """Each text as token ids followed by the end-of-text id."""
    encodings = tok.encode_batch(texts, add_special_tokens=False)
    return [np.array(e.ids + [eot], dtype=dtype) for e in encodings]


def hash_fraction(doc_id: str, seed: int) -> float:
    """A stable pseudo-random number in [0, 1) per document: the same sample whatever the order."""
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


@dataclass
class Part:
    """One part of a cluster's tokens: `tokens/<prefix>.bin/.idx`."""
    prefix: str  # <cluster>/<chunk>-<file>: the corpus file's documents of that cluster, in file order
    tokens: int = 0
    documents: int = 0


class PartWriter:
    """Appends documents to one part `<folder>/<cluster>/<stem>.bin/.idx` per cluster on filesystem `fs`,
    in arrival order; the .idx (uint64 document starts) is written by close()."""

    def __init__(self, fs, folder: str, stem: str, dtype: np.dtype):
        self.fs, self.folder, self.stem, self.dtype = fs, folder, stem, np.dtype(dtype)
        self.files: dict[str, object] = {}
        self.lengths: dict[str, list[np.ndarray]] = {}

    def path(self, name: str, ext: str) -> str:
        return posixpath.join(self.folder, name, f"{self.stem}.{ext}")

    def add(self, name: str, docs: list[np.ndarray]) -> None:
        if name not in self.files:
            self.fs.makedirs(posixpath.join(self.folder, name), exist_ok=True)
            self.files[name], self.lengths[name] = self.fs.open(self.path(name, "bin"), "wb"), []
        if docs:
            self.files[name].write(np.concatenate(docs).astype(self.dtype, copy=False).tobytes())
            self.lengths[name].append(np.array([len(d) for d in docs], dtype=np.uint64))

    def close(self) -> dict[str, Part]:
        parts = {}
        for name, out in self.files.items():
            out.close()
            lengths = np.concatenate(self.lengths[name]) if self.lengths[name] else np.zeros(0, np.uint64)
            with self.fs.open(self.path(name, "idx"), "wb") as idx:
                idx.write((np.cumsum(lengths) - lengths).tobytes())
            parts[name] = Part(f"{name}/{self.stem}", int(lengths.sum()), len(lengths))
        return parts


def cluster_name(index: int) -> str:
    """Name (and file stem) of super-cluster `index`: sc00, sc01, ... as in cluster/clusters.json."""
    return f"sc{index:02d}"


def write_meta(fs, folder: str, *, dtype: np.dtype, eot: int, vocab_size: int, tokenizer: str,
               parts: dict[str, list[Part]], names: list[str], sample: dict | None = None) -> dict:
    """tokens/meta.json: the dtype, ids, each cluster's token and document counts and its parts in order.
    sample: the sample's record (budget, seed, bins, whole, tokens, documents) and whole-corpus "full_tokens"
    and "full_documents", which then become meta's "tokens" and "documents"."""
    meta = {
        "dtype": np.dtype(dtype).name, "eot_id": eot, "vocab_size": vocab_size, "tokenizer": tokenizer,
        "clusters": names,
        "tokens": {n: sum(p.tokens for p in parts.get(n, [])) for n in names},
        "documents": {n: sum(p.documents for p in parts.get(n, [])) for n in names},
        "parts": {n: [{"prefix": p.prefix, "tokens": p.tokens, "documents": p.documents} for p in parts.get(n, [])]
                  for n in names},
    }
    if sample is not None:
        sample = dict(sample)
        meta["tokens"], meta["documents"] = sample.pop("full_tokens"), sample.pop("full_documents")
        meta["sample"] = {**sample, "tokens": {n: sum(p.tokens for p in parts.get(n, [])) for n in names},
                          "documents": {n: sum(p.documents for p in parts.get(n, [])) for n in names}}
    final = posixpath.join(folder, posixpath.basename(TOKENS_META))
    with fs.open(final + ".tmp", "w") as out:  # then renamed: a reader never sees half a file
        json.dump(meta, out, indent=2)
    fs.mv(final + ".tmp", final)
    return meta


def cluster_parts(meta: dict, name: str) -> list[Part]:
    """A cluster's parts in order; a run folder made before parts has one `<name>.bin` per cluster."""
    if "parts" in meta:
        return [Part(p["prefix"], int(p["tokens"]), int(p["documents"])) for p in meta["parts"][name]]
    tokens = int(meta["tokens"].get(name, 0))
    return [Part(name, tokens, int(meta["documents"].get(name, 0)))] if tokens else []


def token_shares(meta: dict) -> np.ndarray:
    """Each cluster's share of all tokens, in meta['clusters'] order (the search's prior)."""
    counts = np.array([meta["tokens"][n] for n in meta["clusters"]], dtype=np.float64)
    return counts / counts.sum()


class Shards:
    """The token shards of a run, memory-mapped (copied to a local cache first when remote): one
    array-like per cluster, its parts read as one sequence."""

    def __init__(self, tokens_url: str):
        import fsspec

        fs, root = fsspec.core.url_to_fs(tokens_url)
        with fs.open(posixpath.join(root, posixpath.basename(TOKENS_META)), "r") as src:
            self.meta = json.load(src)
        self.dtype = np.dtype(self.meta["dtype"])
        self.names: list[str] = list(self.meta["clusters"])
        parts = {n: [p.prefix for p in cluster_parts(self.meta, n)] for n in self.names}
        local = root if _is_local(fs) else _cache(fs, root, [p for n in self.names for p in parts[n]])
        self.arrays = [joined([_memmap(os.path.join(local, f"{p}.bin"), self.dtype, lazy=len(parts[n]) > 1)
                               for p in parts[n]], self.dtype) for n in self.names]

    @property
    def tokens(self) -> np.ndarray:
        return np.array([len(a) for a in self.arrays], dtype=np.int64)


class Joined:
    """Several 1-D arrays read as their concatenation (len and slices), without copying them."""

    def __init__(self, arrays: list[np.ndarray], dtype: np.dtype):
        self.arrays, self.dtype = arrays, np.dtype(dtype)
        self.ends = np.cumsum([len(a) for a in arrays])

    def __len__(self) -> int:
        return int(self.ends[-1])

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"Joined takes slices with step 1, not {key!r}")
        start, stop, _ = key.indices(len(self))
        if stop <= start:
            return np.zeros(0, dtype=self.dtype)
        first, last = np.searchsorted(self.ends, start, side="right"), np.searchsorted(self.ends, stop - 1, side="right")
        pieces = []
        for i in range(first, last + 1):
            begin = int(self.ends[i] - len(self.arrays[i]))
            pieces.append(self.arrays[i][max(start - begin, 0):min(stop - begin, len(self.arrays[i]))])
        return np.concatenate(pieces) if len(pieces) > 1 else np.asarray(pieces[0])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[0:len(self)]
        return whole if dtype is None else whole.astype(dtype)


def joined(arrays: list[np.ndarray], dtype: np.dtype):
    """One cluster's parts as one array-like: nothing, the one part itself, or Joined."""
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return np.zeros(0, dtype=dtype)
    return arrays[0] if len(arrays) == 1 else Joined(arrays, dtype)


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _memmap(path: str, dtype: np.dtype, lazy: bool = False):
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(0, dtype=dtype)
    return LazyMap(path, dtype, size) if lazy else np.memmap(path, dtype=dtype, mode="r")


MAX_OPEN_PARTS = 256  # parts a process keeps memory-mapped at once: each map holds a file descriptor, and a
# corpus of many files has many parts (the system caps both descriptors and maps)


class LazyMap:
    """One part's .bin, memory-mapped only while read: at most MAX_OPEN_PARTS maps per process are
    open (least recently used closed first), whatever the number of parts."""

    def __init__(self, path: str, dtype: np.dtype, size: int):
        self.path, self.dtype = path, np.dtype(dtype)
        self.key = (path, os.stat(path).st_mtime_ns, size, self.dtype.str)  # a rewritten file is mapped anew
        self.length = size // self.dtype.itemsize

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, key: slice) -> np.ndarray:
        return np.array(_open_map(*self.key)[key])  # a copy: no view keeps a closed map alive

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[0:self.length]
        return whole if dtype is None else whole.astype(dtype)


@functools.lru_cache(maxsize=MAX_OPEN_PARTS)
def _open_map(path: str, mtime_ns: int, size: int, dtype: str) -> np.ndarray:
    return np.memmap(path, dtype=np.dtype(dtype), mode="r")


def _cache(fs, root: str, prefixes: list[str]) -> str:
    """A local copy of these parts' .bin files (kept between runs, refetched when the size differs)."""
    key = hashlib.sha1(f"{fs.protocol}:{root}".encode()).hexdigest()[:16]
    local = os.path.join(tempfile.gettempdir(), "climb_ray_shards", key)
    for prefix in prefixes:
        target, source = os.path.join(local, f"{prefix}.bin"), posixpath.join(root, f"{prefix}.bin")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target) or os.path.getsize(target) != fs.size(source):
            part = f"{target}.{os.getpid()}.part"  # trials on one node may fetch at the same time
            fs.get(source, part)
            os.replace(part, target)
    return local
