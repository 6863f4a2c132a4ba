import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb_ray.config import CorpusConfig
from climb_ray.corpus import CorpusError, SkipCounts, iter_file, list_files, scan_file


def read_all(path, cfg=None):
    cfg = cfg or CorpusConfig(max_chars=1000)
    skips = SkipCounts()
    (url, name), = list_files([str(path)], cfg.format)
    return list(iter_file(url, name, cfg, skips)), skips


def write_jsonl(path, rows):
    with open(path, "wb") as f:
        for row in rows:
            f.write(row if isinstance(row, bytes) else (json.dumps(row) + "\n").encode())


def test_broken_jsonl_rows_are_skipped_and_counted_by_reason(tmp_path):
    path = tmp_path / "docs.jsonl"
    write_jsonl(path, [
        {"id": "a", "text": "a good document"},
        {"id": "b", "text": "   "},
        {"id": "c", "text": 42},
        b'{"id": "d", "text": "caf\xe9 latin-1"}\n',
        {"id": "e", "text": "x" * 1001},
        b"{not json\n",
        b"[1, 2]\n",
        {"id": "f", "body": "no text field here"},
        {"id": "g", "text": None},
        {"text": "no id: gets file and row"},
    ])
    docs, skips = read_all(path)
    assert docs == [("a", "a good document"), ("docs.jsonl:9", "no id: gets file and row")]
    assert skips == SkipCounts(empty=2, not_text=1, not_utf8=1, too_long=1, bad_json=2, missing_field=1)
    assert skips.total == 8


def test_a_file_without_the_text_field_is_an_error_naming_field_and_file(tmp_path):
    path = tmp_path / "docs.jsonl"
    write_jsonl(path, [{"id": 1, "body": "hello"}, {"id": 2, "body": "world"}])
    with pytest.raises(CorpusError) as err:
        read_all(path)
    message = str(err.value)
    assert "'text'" in message and "docs.jsonl" in message and "body" in message


def test_parquet_without_the_text_column_is_an_error(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a"], "content": ["hello"]}), path)
    with pytest.raises(CorpusError, match="no text field 'text'.*content"):
        read_all(path)


def test_parquet_reads_text_and_ids_and_counts_bad_rows(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["first doc", None, "third doc"]}), path)
    docs, skips = read_all(path)
    assert docs == [("a", "first doc"), ("c", "third doc")] and skips.empty == 1


def test_binary_parquet_text_is_decoded_or_counted_as_not_utf8(tmp_path):
    path = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"text": pa.array([b"ok text", b"\xff\xfe bad"], pa.binary())}), path)
    docs, skips = read_all(path)
    assert docs == [("docs.parquet:0", "ok text")] and skips.not_utf8 == 1


def test_text_folder_one_document_per_file_named_by_relative_path(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "one.txt").write_text("first file")
    (tmp_path / "two.txt").write_text("second file")
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    (tmp_path / "notes.md").write_text("not a corpus file")
    files = list_files([str(tmp_path)])
    assert [name for _, name in files] == ["bad.txt", "sub/one.txt", "two.txt"]
    cfg, skips, docs = CorpusConfig(), SkipCounts(), []
    for url, name in files:
        docs += list(iter_file(url, name, cfg, skips))
    assert docs == [("sub/one", "first file"), ("two", "second file")] and skips.not_utf8 == 1


def test_gzipped_jsonl_and_globs_are_read(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write(json.dumps({"text": "zipped document"}) + "\n")
    write_jsonl(tmp_path / "b.jsonl", [{"text": "plain document"}])
    files = list_files([str(tmp_path / "*.jsonl*")])
    assert [name for _, name in files] == ["a.jsonl.gz", "b.jsonl"]
    assert scan_file(*files[0], CorpusConfig())["documents"] == 1


def test_custom_text_field_and_scan_summary(tmp_path):
    path = tmp_path / "d.jsonl"
    write_jsonl(path, [{"body": "hello there"}, {"body": ""}])
    (url, name), = list_files([str(path)])
    row = scan_file(url, name, CorpusConfig(text_field="body"))
    assert row["documents"] == 1 and row["chars"] == 11 and row["skipped_empty"] == 1


def test_paths_matching_nothing_are_an_error(tmp_path):
    with pytest.raises(CorpusError, match="matches no"):
        list_files([str(tmp_path / "nothing*.jsonl")])
    with pytest.raises(CorpusError, match="corpus.paths is empty"):
        list_files([])
