"""Megatron-Core indexed datasets and blends (no Ray, no Megatron needed).

A dataset is `<prefix>.bin` (token ids one after another) and `<prefix>.idx` in Megatron-Core's
MMIDIDX layout (megatron/core/datasets/indexed_dataset.py): header, dtype code, then per sequence
its token count (int32) and byte offset (int64), then the document index (int64). As
tools/preprocess_data.py writes it without sentence splitting, every document is one sequence
ending with the end-of-document id. A blend is Megatron's `--data-path w1 prefix1 w2 prefix2 ...`
(NeMo's data_prefix list): Megatron samples each prefix in proportion to its weight, repeating a
dataset when the training run asks for more than it holds.
"""

from __future__ import annotations

import shlex
import struct

import numpy as np

INDEX_HEADER = b"MMIDIDX\x00\x00"
DTYPE_CODES = {"uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8}
COPY_BYTES = 64 << 20  # the .bin is copied (and cast) in pieces of this size


def megatron_dtype(dtype) -> np.dtype:
    """The token dtype Megatron stores: a run's uint16 as is, its uint32 as int32 (Megatron has no uint32)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.name in DTYPE_CODES else np.dtype(np.int32)


def index_bytes(lengths: np.ndarray, dtype) -> bytes:
    """The .idx of documents with these token counts, one sequence per document."""
    dtype = np.dtype(dtype)
    lengths = np.asarray(lengths, dtype=np.int64)
    pointers = (np.cumsum(lengths) - lengths) * dtype.itemsize  # each document's byte offset (none: empty)
    head = INDEX_HEADER + struct.pack("<QBQQ", 1, DTYPE_CODES[dtype.name], len(lengths), len(lengths) + 1)
    return (head + lengths.astype(np.int32).tobytes() + pointers.tobytes()
            + np.arange(len(lengths) + 1, dtype=np.int64).tobytes())


def convert_shard(fs, sources: list[str], prefix: str, dtype) -> tuple[int, int]:
    """A cluster's token parts of the run (`<source>.bin/.idx` each, climb_ray.tokens), in order, as the
    one Megatron dataset `<prefix>.bin/.idx` on the same filesystem; the .idx is renamed into place last,
    so its presence means the dataset is whole. Returns (documents, tokens)."""
    dtype = np.dtype(dtype)
    target = megatron_dtype(dtype)
    step = COPY_BYTES - COPY_BYTES % dtype.itemsize
    lengths, tokens = [], 0
    with fs.open(prefix + ".bin.tmp", "wb") as out:
        for source in sources:
            with fs.open(source + ".idx", "rb") as src:
                starts = np.frombuffer(src.read(), dtype=np.uint64).astype(np.int64)
            size = fs.size(source + ".bin") // dtype.itemsize
            lengths.append(np.diff(np.append(starts, size)))
            tokens += size
            with fs.open(source + ".bin", "rb") as src:
                while piece := src.read(step):
                    out.write(piece if target == dtype else np.frombuffer(piece, dtype).astype(target).tobytes())
    fs.mv(prefix + ".bin.tmp", prefix + ".bin")
    lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    with fs.open(prefix + ".idx.tmp", "wb") as out:
        out.write(index_bytes(lengths, target))
    fs.mv(prefix + ".idx.tmp", prefix + ".idx")
    return len(lengths), int(tokens)


def data_path(weights: dict[str, float], prefixes: dict[str, str]) -> list:
    """[w1, prefix1, w2, prefix2, ...] of the clusters with a weight above 0, weights summing to 1
    (to 12 digits: Megatron normalises them again)."""
    total = sum(w for w in weights.values() if w > 0)
    return [x for name, w in weights.items() if w > 0 for x in (float(f"{w / total:.12g}"), prefixes[name])]


def command_line(path: list) -> str:
    """The `--data-path ...` fragment of Megatron-LM's pretrain_gpt.py for a data_path list."""
    return "--data-path " + " ".join(repr(x) if isinstance(x, float) else shlex.quote(str(x)) for x in path)
