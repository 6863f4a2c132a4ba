"""The tokenizer and the per-super-cluster token shards the proxies train on.

A shard `tokens/<cluster>.bin` is the cluster's documents as token ids, one after another, each
followed by the end-of-text id (the document boundary); `<cluster>.idx` holds the uint64 offset
where each document starts. `tokens/meta.json` has the dtype, the end-of-text id and the token and
document counts of every cluster (the search's Dirichlet prior is their token shares).
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tempfile
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

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
class ClusterShard:
    tokens: int = 0
    documents: int = 0
    lengths: list[int] = field(default_factory=list)  # per document, in file order


class ShardWriter:
    """Appends documents to one `<name>.bin` per cluster in a local folder, in arrival order."""

    def __init__(self, folder: str, dtype: np.dtype):
        self.folder, self.dtype = folder, np.dtype(dtype)
        os.makedirs(folder, exist_ok=True)
        self.files: dict[str, object] = {}
        self.shards: dict[str, ClusterShard] = {}

    def add(self, name: str, docs: list[np.ndarray]) -> None:
        if name not in self.files:
            self.files[name] = open(os.path.join(self.folder, f"{name}.bin"), "wb")
            self.shards[name] = ClusterShard()
        shard = self.shards[name]
        for doc in docs:
            self.files[name].write(np.asarray(doc, dtype=self.dtype).tobytes())
            shard.tokens += len(doc)
            shard.documents += 1
            shard.lengths.append(len(doc))

    def close(self) -> dict[str, ClusterShard]:
        for name, out in self.files.items():
            out.close()
            starts = np.concatenate([[0], np.cumsum(self.shards[name].lengths)[:-1]]).astype(np.uint64)
            starts.tofile(os.path.join(self.folder, f"{name}.idx"))
        return self.shards


def cluster_name(index: int) -> str:
    """Name (and file stem) of super-cluster `index`: sc00, sc01, ... as in cluster/clusters.json."""
    return f"sc{index:02d}"


def write_meta(fs, folder: str, *, dtype: np.dtype, eot: int, vocab_size: int, tokenizer: str,
               shards: dict[str, ClusterShard], names: list[str]) -> dict:
    meta = {
        "dtype": np.dtype(dtype).name, "eot_id": eot, "vocab_size": vocab_size, "tokenizer": tokenizer,
        "clusters": names,
        "tokens": {n: shards[n].tokens if n in shards else 0 for n in names},
        "documents": {n: shards[n].documents if n in shards else 0 for n in names},
    }
    final = posixpath.join(folder, "meta.json")
    with fs.open(final + ".tmp", "w") as out:  # then renamed: a reader never sees half a file
        json.dump(meta, out, indent=2)
    fs.mv(final + ".tmp", final)
    return meta


def token_shares(meta: dict) -> np.ndarray:
    """Each cluster's share of all tokens, in meta['clusters'] order (the search's prior)."""
    counts = np.array([meta["tokens"][n] for n in meta["clusters"]], dtype=np.float64)
    return counts / counts.sum()


class Shards:
    """The token shards of a run, memory-mapped (copied to a local cache first when remote)."""

    def __init__(self, tokens_url: str):
        import fsspec

        fs, root = fsspec.core.url_to_fs(tokens_url)
        with fs.open(posixpath.join(root, "meta.json"), "r") as src:
            self.meta = json.load(src)
        self.dtype = np.dtype(self.meta["dtype"])
        self.names: list[str] = list(self.meta["clusters"])
        filled = [n for n in self.names if self.meta["tokens"].get(n, 0) > 0]
        local = root if _is_local(fs) else _cache(fs, root, filled)
        self.arrays = [_memmap(os.path.join(local, f"{n}.bin"), self.dtype) if n in filled
                       else np.zeros(0, dtype=self.dtype) for n in self.names]

    @property
    def tokens(self) -> np.ndarray:
        return np.array([len(a) for a in self.arrays], dtype=np.int64)


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _memmap(path: str, dtype: np.dtype) -> np.ndarray:
    if os.path.getsize(path) == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def _cache(fs, root: str, names: list[str]) -> str:
    key = hashlib.sha1(f"{fs.protocol}:{root}".encode()).hexdigest()[:16]
    local = os.path.join(tempfile.gettempdir(), "climb_ray_shards", key)
    os.makedirs(local, exist_ok=True)
    for name in names:
        target = os.path.join(local, f"{name}.bin")
        if not os.path.exists(target) or os.path.getsize(target) != fs.size(posixpath.join(root, f"{name}.bin")):
            part = f"{target}.{os.getpid()}.part"  # trials on one node may fetch at the same time
            fs.get(posixpath.join(root, f"{name}.bin"), part)
            os.replace(part, target)
    return local


def concat_parts(fs, part_folders: list[str], out_folder: str, names: list[str], dtype: np.dtype) -> dict:
    """Join the per-chunk shards of each cluster, in chunk order, into `<out>/<name>.bin/.idx`."""
    itemsize = np.dtype(dtype).itemsize
    counts = {}
    for name in names:
        tokens, documents = 0, 0
        final_bin, final_idx = posixpath.join(out_folder, f"{name}.bin"), posixpath.join(out_folder, f"{name}.idx")
        with fs.open(final_bin + ".tmp", "wb") as out_bin, fs.open(final_idx + ".tmp", "wb") as out_idx:
            for folder in part_folders:
                part = posixpath.join(folder, f"{name}.bin")
                if not fs.exists(part):
                    continue
                with fs.open(part, "rb") as src:
                    while piece := src.read(64 << 20):
                        out_bin.write(piece)
                with fs.open(posixpath.join(folder, f"{name}.idx"), "rb") as src:
                    starts = np.frombuffer(src.read(), dtype=np.uint64) + np.uint64(tokens)
                out_idx.write(starts.tobytes())
                tokens += fs.size(part) // itemsize
                documents += len(starts)
        fs.mv(final_bin + ".tmp", final_bin)
        fs.mv(final_idx + ".tmp", final_idx)
        counts[name] = ClusterShard(tokens=int(tokens), documents=int(documents))
    return counts
