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


def test_each_shard_holds_its_super_clusters_documents_in_file_order(finished, three_files):
    run, info = finished
    tokens = run / "tokens"
    meta = json.loads((tokens / "meta.json").read_text())
    tok = Tokenizer.from_file(str(tokens / "tokenizer.json"))
    assert tok.get_vocab_size() <= 1024 and meta["dtype"] == "uint16" and meta["eot_id"] == 0
    supers = {}
    for chunk in sorted((run / "cluster" / "assignments").iterdir()):
        table = pq.read_table(chunk, columns=["doc_id", "super_cluster"])
        supers.update(zip(table.column("doc_id").to_pylist(), table.column("super_cluster").to_pylist()))
    expected = {name: [] for name in meta["clusters"]}
    for part in range(3):
        for line in open(three_files / f"part{part}.jsonl"):
            row = json.loads(line)
            if supers[row["id"]] >= 0:
                expected[f"sc{supers[row['id']]:02d}"].append(tok.encode(row["text"]).ids + [0])
    assert sum(len(v) for v in expected.values()) == info["documents"] < 300  # some documents were pruned
    for name, docs in expected.items():
        shard = np.fromfile(tokens / f"{name}.bin", dtype=np.uint16)
        assert np.array_equal(shard, np.concatenate(docs)), name
        assert meta["tokens"][name] == len(shard) and meta["documents"][name] == len(docs)
        starts = np.fromfile(tokens / f"{name}.idx", dtype=np.uint64)
        assert list(starts) == list(np.cumsum([0] + [len(d) for d in docs])[:-1])
    assert not (tokens / "parts").exists()


def test_a_killed_tokens_stage_resumes_without_redoing_finished_chunks(finished, three_files, tmp_path,
                                                                       monkeypatch, capsys):
    shutil.copytree(finished[0], tmp_path / "run")
    cfg = config(three_files, tmp_path / "run")
    clean = {p.name: p.read_bytes() for p in (tmp_path / "run" / "tokens").glob("sc*")}
    real, calls, kill = ray_tokens.tokenize_chunk, [], [True]

    def dies_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if kill[0] and len(calls) == 2:
            raise Killed("as if the job were killed here")
        return real(*args, **kwargs)

    monkeypatch.setattr(ray_tokens, "tokenize_chunk", dies_on_the_second_chunk)
    with pytest.raises(Killed):
        run_pipeline(cfg, until="tokens", redo=("tokens",))
    parts = tmp_path / "run" / "tokens" / "parts"
    assert (parts / "chunk-00000" / "_SUCCESS").exists() and not (parts / "chunk-00001" / "_SUCCESS").exists()
    assert not (tmp_path / "run" / "tokens" / "_DONE").exists()
    calls.clear()
    kill[0] = False
    monkeypatch.setenv("CLIMB_RAY_PROGRESS_S", "0.01")
    capsys.readouterr()
    again = run_pipeline(cfg, until="tokens").results[-1]
    assert not again.skipped and len(calls) == 2  # chunks 1 and 2 only
    out = capsys.readouterr().out  # periodic progress counting the kept chunk, then the stage's line
    assert "tokens (chunk 2 of 3): " in out and " documents (" in out and "tokens: done in " in out
    assert {p.name: p.read_bytes() for p in (tmp_path / "run" / "tokens").glob("sc*")} == clean


def test_a_tokens_stage_killed_while_moving_the_document_lists_resumes(finished, three_files, tmp_path,
                                                                        monkeypatch):
    from fsspec.implementations.local import LocalFileSystem

    shutil.copytree(finished[0], tmp_path / "run")
    cfg = config(three_files, tmp_path / "run")
    clean = {p.name: p.read_bytes() for p in (tmp_path / "run" / "tokens").glob("sc*")}
    docs = {p.name: p.read_bytes() for p in (tmp_path / "run" / "tokens" / "docs").iterdir()}
    real, moved = LocalFileSystem.mv, []

    def dies_on_the_second_move(self, path1, path2, *args, **kwargs):
        if str(path1).endswith("docs.parquet"):
            moved.append(path1)
            if len(moved) == 2:
                raise Killed("as if the job were killed between two moves")
        return real(self, path1, path2, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "mv", dies_on_the_second_move)
    with pytest.raises(Killed):
        run_pipeline(cfg, until="tokens", redo=("tokens",))
    monkeypatch.undo()
    again = run_pipeline(cfg, until="tokens").results[-1]
    assert not again.skipped and again.info["documents"] == finished[1]["documents"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "run" / "tokens").glob("sc*")} == clean
    assert {p.name: p.read_bytes() for p in (tmp_path / "run" / "tokens" / "docs").iterdir()} == docs
