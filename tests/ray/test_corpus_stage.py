import json

import pyarrow.parquet as pq
import pytest

from climb_ray.artifacts import RunDir, StageChangedError
from climb_ray.cli import main
from climb_ray.config import CorpusConfig
from climb_ray.config_io import load_config
from climb_ray.corpus import CorpusError, SkipCounts, iter_file, list_files
from climb_ray.stages.pipeline import run_pipeline

pytestmark = pytest.mark.ray


def make_corpus(folder):
    folder.mkdir()
    with open(folder / "a.jsonl", "w") as f:
        for i in range(30):
            f.write(json.dumps({"id": f"a{i}", "text": f"document number {i} " * 3}) + "\n")
        f.write("{broken\n")
    with open(folder / "b.jsonl", "wb") as f:
        f.write(b'{"text": "only good row of b"}\n{"text": ""}\n{"text": "\xff"}\n')
    return folder


def test_ray_scan_counts_the_same_documents_and_skips_as_a_plain_read(ray_session, tmp_path):
    from climb_ray.adapters.ray_data import scan_corpus

    files = list_files([str(make_corpus(tmp_path / "c"))])
    rows = scan_corpus(files, CorpusConfig())
    plain = SkipCounts()
    documents = sum(1 for url, name in files for _ in iter_file(url, name, CorpusConfig(), plain))
    assert sum(r["documents"] for r in rows) == documents == 31
    assert sum(r["skipped_bad_json"] for r in rows) == plain.bad_json == 1
    assert sum(r["skipped_empty"] + r["skipped_not_utf8"] for r in rows) == 2


def test_corpus_stage_writes_its_files_then_is_skipped_and_guards_its_settings(ray_session, tmp_path):
    corpus = make_corpus(tmp_path / "c")
    run_uri = f"file://{tmp_path}/run"
    cfg = load_config(None, [f"run_dir={run_uri}", f"corpus.paths=[{corpus}]"])
    first = run_pipeline(cfg, until="corpus")
    run = RunDir(run_uri)
    stats = run.read_json("corpus/stats.json")
    assert stats["documents"] == 31 and stats["skipped"] == 3 and stats["files"] == 2
    assert pq.read_table(run.url("corpus/files.parquet")).num_rows == 2
    assert run.exists("config.yaml") and run.is_done("corpus")
    assert first.ray and not first.results[0].skipped

    again = run_pipeline(cfg, until="corpus")
    assert again.results[0].skipped and again.results[0].info == stats

    changed = load_config(None, [f"run_dir={run_uri}", f"corpus.paths=[{corpus}]", "corpus.max_chars=10"])
    with pytest.raises(StageChangedError, match="corpus"):
        run_pipeline(changed, until="corpus")
    with pytest.raises(CorpusError, match="gave 0 documents from 2 files .*too_long 31"):
        run_pipeline(changed, until="corpus", redo=("corpus",))  # every row is over 10 characters
    assert not run.is_done("corpus") and run.read_json("corpus/stats.json")["skipped_by_reason"]["too_long"] == 31


def test_an_error_inside_a_ray_task_reaches_the_user_as_one_line(ray_session, tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "d.jsonl").write_text('{"body": "x"}\n')
    code = main(["corpus", "scan", f"run_dir={tmp_path}/run", f"corpus.paths=[{tmp_path}/c]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("climb-ray: error: corpus file") and "'text'" in err[-1]
    assert not RunDir(str(tmp_path / "run")).is_done("corpus")
