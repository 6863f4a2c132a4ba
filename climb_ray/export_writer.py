"""Writes the export's rows, already in their final order, as numbered shards of about shard_mb:
`part-00000.parquet` (text, cluster, doc_id) and, when asked, `tokens-00000.bin` / `.idx` (the
rows' token ids one after another, each ending with end-of-text; uint64 start of each row).

Each shard is written under a temp name and renamed when complete. A shard that already exists is
not written again (a killed export rerun: the rows are the same, in the same order), so a rerun
finishes the missing shards only and never duplicates a row.
"""

from __future__ import annotations

import io
import posixpath

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = ["text", "cluster", "doc_id"]


class ShardedWriter:
    def __init__(self, fs, folder: str, shard_bytes: int, token_dtype: np.dtype | None = None):
        self.fs, self.folder, self.shard_bytes = fs, folder, shard_bytes
        self.token_dtype = np.dtype(token_dtype) if token_dtype is not None else None
        self.pending: list[pa.Table] = []
        self.pending_bytes = 0
        self.shards: list[dict] = []
        self.reused = 0  # shards found complete from an earlier, killed run
        fs.makedirs(folder, exist_ok=True)

    def add(self, table: pa.Table) -> None:
        """Rows in final order; `ids` (a list column) is their token ids when token shards are written.
        A shard is cut after the row that brings it to shard_bytes of text."""
        if "text" in table.column_names:
            sizes = pa.compute.binary_length(table.column("text")).to_numpy(zero_copy_only=False)
        else:  # a token-ID corpus: the size of the ids
            ids = pa.compute.list_value_length(table.column("ids")).to_numpy(zero_copy_only=False)
            sizes = ids * (self.token_dtype.itemsize if self.token_dtype is not None else 8)
        start = 0
        while start < table.num_rows:
            room = self.shard_bytes - self.pending_bytes
            cumulative = np.cumsum(sizes[start:])
            end = start + int(np.searchsorted(cumulative, room, side="left")) + 1  # the row reaching the size
            end = min(end, table.num_rows)
            self.pending.append(table.slice(start, end - start))
            self.pending_bytes += int(cumulative[end - start - 1])
            start = end
            if self.pending_bytes >= self.shard_bytes:
                self._flush()

    def close(self) -> list[dict]:
        if self.pending:
            self._flush()
        return self.shards

    def _flush(self) -> None:
        table = pa.concat_tables(self.pending).combine_chunks()
        self.pending, self.pending_bytes = [], 0
        index = len(self.shards)
        name = f"part-{index:05d}.parquet"
        entry = {"file": name, "rows": table.num_rows}
        if self.token_dtype is not None:
            entry["tokens_file"] = f"tokens-{index:05d}.bin"
            entry["tokens"] = int(pa.compute.sum(pa.compute.list_value_length(table.column("ids"))).as_py() or 0)
        if self.fs.exists(posixpath.join(self.folder, name)):
            self.reused += 1
        else:
            if self.token_dtype is not None:
                self._write_tokens(index, table.column("ids"))
            buffer = io.BytesIO()
            columns = COLUMNS if "text" in table.column_names else ["ids", *COLUMNS[1:]]
            pq.write_table(table.select(columns), buffer, compression="zstd")
            self._put(name, buffer.getvalue())  # the Parquet file last: its presence means the shard is whole
        self.shards.append(entry)

    def _write_tokens(self, index: int, ids: pa.ChunkedArray) -> None:
        lists = ids.combine_chunks()
        values = lists.values.to_numpy(zero_copy_only=False).astype(self.token_dtype, copy=False)
        starts = lists.offsets.to_numpy()[:-1].astype(np.uint64) - np.uint64(lists.offsets[0].as_py())
        self._put(f"tokens-{index:05d}.bin", values.tobytes())
        self._put(f"tokens-{index:05d}.idx", starts.tobytes())

    def _put(self, name: str, data: bytes) -> None:
        final = posixpath.join(self.folder, name)
        with self.fs.open(final + ".tmp", "wb") as out:
            out.write(data)
        self.fs.mv(final + ".tmp", final)
