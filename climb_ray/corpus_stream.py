"""Reading corpus files as bytes: a .zst reader that notices a truncated frame, lines with a byte
cap (a longer line is read past in blocks, never held whole), and which errors mean a broken file
(counted, the rows before the break kept) rather than failing storage (raised)."""

from __future__ import annotations

import lzma
import zlib

import fsspec

READ_BLOCK = 1 << 16  # JSONL is read in blocks of this many bytes (at most this much is lost at a break)


def broken_errors() -> tuple:
    import pyarrow as pa

    errors = [EOFError, zlib.error, lzma.LZMAError, OSError, pa.ArrowException]
    try:
        import zstandard

        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


BROKEN = broken_errors()  # a truncated or corrupt compressed stream or Parquet file (an OSError without errno)


NOT_BROKEN = (FileNotFoundError, PermissionError, ConnectionError, TimeoutError)  # the storage, not the file


TOO_LONG = object()  # a line or file over the byte cap, never parsed


class Zstd:
    """A .zst stream read frame by frame; a stream that ends inside a frame raises EOFError (fsspec's
    zstd reader returns what it has and stops, so a truncated file would lose its tail unnoticed)."""

    def __init__(self, raw):
        import zstandard

        self.raw, self.new = raw, zstandard.ZstdDecompressor().decompressobj
        self.dobj, self.started = self.new(), False

    def read(self, n: int) -> bytes:
        while True:
            chunk = self.raw.read(READ_BLOCK)
            if not chunk:
                if self.started and not self.dobj.eof:
                    raise EOFError("zstd stream ends inside a frame (truncated file)")
                return b""
            out = b""
            while chunk:
                if self.dobj.eof:  # the next frame of a multi-frame file
                    self.dobj = self.new()
                self.started = True
                out += self.dobj.decompress(chunk)
                chunk = self.dobj.unused_data if self.dobj.eof else b""
            if out:
                return out


def open_stream(url: str):
    """A binary stream of the file's bytes, decompressed as its name says."""
    import contextlib

    if url.lower().endswith(".zst"):
        @contextlib.contextmanager
        def zst():
            with fsspec.open(url, "rb") as raw:
                yield Zstd(raw)
        return zst()
    return fsspec.open(url, "rb", compression="infer")


def lines(src, cap: int):
    """The lines of a binary stream, each at most `cap` bytes; a longer one is read past in blocks
    (never held whole) and comes out as TOO_LONG."""
    rest, skipping = b"", False
    while True:
        block = src.read(READ_BLOCK)
        if not block:
            break
        rest += block
        start = 0
        while True:
            end = rest.find(b"\n", start)
            if end < 0:
                break
            if skipping:
                skipping = False
            elif end - start > cap:
                yield TOO_LONG
            else:
                yield rest[start:end + 1]
            start = end + 1
        rest = rest[start:]
        if len(rest) > cap:
            if not skipping:
                yield TOO_LONG
            skipping, rest = True, b""
    if rest and not skipping:
        yield rest if len(rest) <= cap else TOO_LONG
