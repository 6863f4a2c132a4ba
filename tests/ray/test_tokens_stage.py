import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer

from climb_ray.adapters import ray_tokens
from climb_ray.stages.pipeline import run_pipeline
from tests.conftest import tokens_config as config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


class Killed(Exception):
    pass


def tree(folder):
    """Every file of a tokens/ folder but the markers, by path: what two runs must write alike."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("_DONE", "_STARTED", "_SUCCESS")}


def test_each_part_holds_its_files_documents_of_one_super_cluster_in_file_order(finished, three_files):
    run, info = finished
    tokens = run / "tokens"
    meta = json.loads((tokens / "meta.json").read_text())
    tok = Tokenizer.from_file(str(tokens / "tokenizer.json"))
    assert tok.get_vocab_size() <= 1024 and meta["dtype"] == "uint16" and meta["eot_id"] == 0
    supers = {}
    for chunk in sorted((run / "cluster" / "assignments").iterdir()):
        table = pq.read_table(chunk, columns=["doc_id", "super_cluster"])
        supers.update(zip(table.column("doc_id").to_pylist(), table.column("super_cluster").to_pylist()))
    expected = {}  # part prefix -> its documents: file k is chunk k (embed.chunk_docs=100)
    for part in range(3):
        for line in open(three_files / f"part{part}.jsonl"):
            row = json.loads(line)
            if supers[row["id"]] >= 0:
                prefix = f"sc{supers[row['id']]:02d}/{part:05d}-00000"
                expected.setdefault(prefix, []).append(tok.encode(row["text"]).ids + [0])
    assert sum(len(v) for v in expected.values()) == info["documents"] < 300  # some documents were pruned
    for name in meta["clusters"]:
        listed = meta["parts"][name]
        assert [p["prefix"] for p in listed] == sorted(p for p in expected if p.startswith(name)), name
        for part in listed:
            docs = expected[part["prefix"]]
            shard = np.fromfile(tokens / f"{part['prefix']}.bin", dtype=np.uint16)
            assert np.array_equal(shard, np.concatenate(docs)), part
            assert part["tokens"] == len(shard) and part["documents"] == len(docs)
            starts = np.fromfile(tokens / f"{part['prefix']}.idx", dtype=np.uint64)
            assert list(starts) == list(np.cumsum([0] + [len(d) for d in docs])[:-1])
        assert meta["tokens"][name] == sum(p["tokens"] for p in listed)
        assert meta["documents"][name] == sum(p["documents"] for p in listed)
    assert info["parts"] == len(expected) == len(list(tokens.glob("sc*/*.bin")))
    docs = pq.read_table(sorted(tokens.glob("docs/*.parquet")))
    assert docs.column_names == ["doc_id", "super_cluster", "n_tokens"] and docs.num_rows == info["documents"]
    assert not (tokens / "parts").exists()


def test_a_killed_tokens_stage_redoes_only_unfinished_chunks_and_leaves_no_duplicate_parts(
        finished, three_files, tmp_path, monkeypatch, capsys):
    from climb_ray.stages import tokens as stage

    shutil.copytree(finished[0], tmp_path / "run")
    tokens = tmp_path / "run" / "tokens"
    cfg = config(three_files, tmp_path / "run")
    clean = tree(tokens)
    real_finish, real_tokenize, finished_chunks, asked = stage.finish_chunk, ray_tokens.tokenize_files, [], []

    def dies_on_the_second_chunk(run, folder, index, record):
        if len(finished_chunks) == 1:
            raise Killed("as if the job were killed here")
        finished_chunks.append(index)
        real_finish(run, folder, index, record)

    def tokenize_files(items, *args, **kwargs):
        asked.append(sorted({item["chunk"] for item in items}))
        return real_tokenize(items, *args, **kwargs)

    monkeypatch.setattr(stage, "finish_chunk", dies_on_the_second_chunk)
    monkeypatch.setattr(ray_tokens, "tokenize_files", tokenize_files)
    with pytest.raises(Killed):
        run_pipeline(cfg, until="tokens", redo=("tokens",))
    markers = sorted(p.parent.name for p in (tokens / "chunks").glob("*/_SUCCESS"))
    assert markers == [f"chunk-{finished_chunks[0]:05d}"] and not (tokens / "_DONE").exists()
    unfinished = [i for i in range(3) if i != finished_chunks[0]]
    stale = tokens / "sc00" / f"{unfinished[0]:05d}-00007.bin"  # as an earlier split of the chunk could leave
    stale.write_bytes(b"\0\0")
    monkeypatch.setattr(stage, "finish_chunk", real_finish)
    monkeypatch.setenv("CLIMB_RAY_PROGRESS_S", "0.01")
    capsys.readouterr()
    again = run_pipeline(cfg, until="tokens").results[-1]
    assert not again.skipped and asked == [[0, 1, 2], unfinished]  # the finished chunk is not redone
    out = capsys.readouterr().out  # periodic progress counting the kept chunk, then the stage's line
    assert "tokens (2 of 3 chunks, 2 files): " in out and " documents (" in out and "tokens: done in " in out
    assert not stale.exists() and tree(tokens) == clean  # the same parts, bytes, document lists and meta.json


def test_the_same_corpus_gives_the_same_parts_byte_for_byte(finished, three_files, tmp_path):
    shutil.copytree(finished[0], tmp_path / "run")
    again = run_pipeline(config(three_files, tmp_path / "run"), until="tokens", redo=("tokens",)).results[-1]
    assert not again.skipped and tree(tmp_path / "run" / "tokens") == tree(finished[0] / "tokens")


def test_a_worker_rereads_a_chunks_assignments_once_they_are_rewritten(tmp_path):
    """A reused worker keeps the last chunk's doc -> super-cluster map; after --redo cluster rewrites
    that file, it must read the new one, not keep the old clustering."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from climb_ray.adapters import ray_tokens as rt

    path = str(tmp_path / "chunk-00000")
    pq.write_table(pa.table({"doc_id": ["a", "b"], "super_cluster": [0, 1]}), path)
    assert rt._assignments(path) == {"a": 0, "b": 1}
    pq.write_table(pa.table({"doc_id": ["a", "b", "c"], "super_cluster": [1, 0, 1]}), path)
    os.utime(path, ns=(0, 10**18))  # a different time even on a coarse clock
    assert rt._assignments(path) == {"a": 1, "b": 0, "c": 1}
