"""Pre-clustered corpora: labels and token IDs read by the corpus reader (no Ray)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb_ray.config import ConfigError, CorpusConfig
from climb_ray.config_io import load_config
from climb_ray.corpus import CorpusError, SkipCounts, iter_records, scan_file


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def read(path, **settings):
    skips = SkipCounts()
    rows = list(iter_records(str(path), "f", CorpusConfig(**settings), skips))
    return rows, skips


def test_labels_come_with_each_document_and_unlabelled_rows_are_skipped_and_counted(tmp_path):
    path = jsonl(tmp_path / "a.jsonl", [
        {"id": "a", "text": "one", "domain": "wiki"}, {"id": "b", "text": "two"},
        {"id": "c", "text": "three", "domain": None}, {"id": "d", "text": "four", "domain": ""},
        {"id": "e", "text": "five", "domain": ["x"]}, {"id": "f", "text": "six", "domain": True},
        {"id": "g", "text": "seven", "domain": "news"}])
    rows, skips = read(path, label_field="domain")
    assert rows == [("a", "one", "wiki"), ("g", "seven", "news")]
    assert (skips.missing_label, skips.bad_label) == (3, 2)


def test_integral_float_labels_are_integers_as_pandas_writes_them_and_fractions_are_skipped(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c", "d"], "cluster": [3.0, 7.0, None, 2.5]}), path)
    rows, skips = read(path, label_field="cluster")
    assert [r[2] for r in rows] == [3, 7] and all(type(r[2]) is int for r in rows)
    assert (skips.missing_label, skips.bad_label) == (1, 1)


def test_a_file_with_integer_and_string_labels_is_an_error_naming_both(tmp_path):
    path = jsonl(tmp_path / "mixed.jsonl", [{"text": "a", "c": 1}, {"text": "b", "c": 2}, {"text": "c", "c": "web"}])
    with pytest.raises(CorpusError, match=r"mixed.jsonl.*label_field='c' holds integer labels \(e.g. 1\) and "
                                          r"string labels \(e.g. 'web'\)"):
        read(path, label_field="c")


def test_a_missing_label_column_is_an_error_naming_it_and_the_columns(tmp_path):
    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": ["a"], "source": ["x"]}), path)
    with pytest.raises(CorpusError, match=r"no label field 'cluster' \(its columns: text, source\)"):
        read(path, label_field="cluster")
    with pytest.raises(CorpusError, match="no label field 'cluster' in any row"):
        read(jsonl(tmp_path / "b.jsonl", [{"text": "a"}]), label_field="cluster")


def test_text_files_cannot_carry_labels(tmp_path):
    (tmp_path / "doc.txt").write_text("hello")
    with pytest.raises(CorpusError, match="is a .txt file"):
        read(tmp_path / "doc.txt", label_field="cluster")


def test_token_ids_are_read_as_int64_arrays_and_broken_lists_are_skipped_and_counted(tmp_path):
    path = tmp_path / "ids.parquet"
    pq.write_table(pa.table({"input_ids": [[5, 6, 7], [], [1, -2], None, [9]], "label": [0, 0, 1, 1, 2]}), path)
    rows, skips = read(path, token_ids_field="input_ids", label_field="label")
    assert [(d, list(v), lab) for d, v, lab in rows] == [("f:0", [5, 6, 7], 0), ("f:4", [9], 2)]
    assert rows[0][1].dtype == "int64" and skips.bad_token_ids == 3
    bad = jsonl(tmp_path / "ids.jsonl", [{"ids": [1, "x"], "label": 0}, {"ids": [[1]], "label": 0},
                                         {"ids": [2, 3], "label": 0}])
    rows, skips = read(bad, token_ids_field="ids", label_field="label")
    assert [list(v) for _, v, _ in rows] == [[2, 3]] and skips.bad_token_ids == 2


def test_the_scan_counts_documents_per_label(tmp_path):
    path = jsonl(tmp_path / "a.jsonl", [{"text": "x", "d": "b"}, {"text": "y", "d": "a"}, {"text": "z", "d": "b"}])
    row = scan_file(path, "a.jsonl", CorpusConfig(label_field="d"))
    assert row["label_kind"] == "string" and dict(json.loads(row["labels"])) == {"a": 1, "b": 2}


@pytest.mark.parametrize("overrides, message", [
    (["corpus.token_ids_field=ids", "tokens.tokenizer=all-MiniLM-L6-v2"], "need their clusters given"),
    (["corpus.token_ids_field=ids", "corpus.label_field=c"], "not 'bpe'"),
    (["corpus.label_field=text"], "the same field as the document's text or id"),
])
def test_pre_clustered_settings_that_cannot_work_are_refused_by_name(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
