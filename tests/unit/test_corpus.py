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


def _compressed(path, data: bytes):
    import bz2
    import lzma

    import zstandard

    openers = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress,
               ".zst": zstandard.ZstdCompressor().compress}
    ext = next((e for e in openers if str(path).endswith(e)), "")
    path.write_bytes(openers[ext](data) if ext else data)


@pytest.mark.parametrize("ext", [j + c for j in (".jsonl", ".ndjson", ".json") for c in ("", ".gz", ".bz2", ".xz", ".zst")])
def test_every_listed_jsonl_format_reads_every_row(tmp_path, ext):
    _compressed(tmp_path / f"a{ext}", "".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(7)).encode())
    docs, skips = read_all(tmp_path / f"a{ext}")
    assert [text for _, text in docs] == [f"document {i}" for i in range(7)] and skips.total == 0


@pytest.mark.parametrize("ext", [".txt", ".txt.gz", ".txt.bz2", ".txt.xz", ".txt.zst"])
def test_every_listed_text_format_reads_as_one_document(tmp_path, ext):
    _compressed(tmp_path / f"essay{ext}", "one whole document\nover two lines".encode())
    docs, skips = read_all(tmp_path / f"essay{ext}")
    assert [text for _, text in docs] == ["one whole document\nover two lines"] and skips.total == 0


@pytest.mark.parametrize("ext", [".gz", ".zst"])
def test_a_truncated_stream_keeps_the_rows_before_the_break_and_counts_the_file(tmp_path, ext):
    rows = "".join(json.dumps({"text": f"document number {i} {i * 7919 % 10007} {i ** 3}"}) + "\n"
                   for i in range(20_000)).encode()
    _compressed(tmp_path / f"whole.jsonl{ext}", rows)
    whole = (tmp_path / f"whole.jsonl{ext}").read_bytes()
    (tmp_path / f"cut.jsonl{ext}").write_bytes(whole[: len(whole) // 2])
    docs, skips = read_all(tmp_path / f"cut.jsonl{ext}")
    assert 1000 < len(docs) < 20_000 and skips.broken_file == 1
    assert docs == read_all(tmp_path / f"cut.jsonl{ext}")[0]  # every stage reads the same rows
    assert len(read_all(tmp_path / f"whole.jsonl{ext}")[0]) == 20_000


def test_a_corrupt_parquet_file_is_counted_not_a_traceback(tmp_path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not a parquet file PAR1")
    docs, skips = read_all(tmp_path / "bad.parquet")
    assert docs == [] and skips.broken_file == 1


def test_deeply_nested_json_and_overlong_lines_are_skipped_and_counted(tmp_path):
    nested = ("[" * 20_000 + "]" * 20_000).encode() + b"\n"  # RecursionError in json.loads
    huge = json.dumps({"text": "y" * 5000}).encode() + b"\n"  # over the line cap of max_chars=100
    write_jsonl(tmp_path / "odd.jsonl", [{"text": "fine"}, nested, huge, {"text": "also fine"}, huge[:-1]])
    cfg = CorpusConfig(max_chars=100)
    docs, skips = read_all(tmp_path / "odd.jsonl", cfg)
    assert docs == [("odd.jsonl:0", "fine"), ("odd.jsonl:3", "also fine")]  # row numbers count every line
    assert skips.bad_json == 1 and skips.too_long == 2


def test_an_overlong_line_is_never_held_whole(tmp_path):
    from climb_ray.corpus_stream import TOO_LONG, lines

    import io

    stream = io.BytesIO(b"short\n" + b"z" * (5 << 20) + b"\nafter\nlast")
    assert list(lines(stream, 1000)) == [b"short\n", TOO_LONG, b"after\n", b"last"]


def test_an_overlong_text_file_is_counted_too_long(tmp_path):
    (tmp_path / "big.txt").write_text("w" * 1000)
    docs, skips = read_all(tmp_path / "big.txt", CorpusConfig(max_chars=100))
    assert docs == [] and skips.too_long == 1


def test_equal_file_names_under_two_paths_get_distinct_default_ids(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_jsonl(tmp_path / folder / "x.jsonl", [{"text": f"from {folder}"}])
    write_jsonl(tmp_path / "a" / "only.jsonl", [{"text": "alone"}])
    files = list_files([str(tmp_path / "a"), str(tmp_path / "b")])
    names = [name for _, name in files]
    assert len(set(names)) == 3 and "only.jsonl" in names  # only the clashing names change
    ids = [d for url, name in files for d, _ in iter_file(url, name, CorpusConfig(), SkipCounts())]
    assert len(set(ids)) == 3


def test_a_shared_id_is_one_line_naming_it_and_its_files_and_a_hash_is_not_enough(tmp_path):
    from climb_ray.corpus import check_unique_ids

    write_jsonl(tmp_path / "one.jsonl", [{"id": "doc-7", "text": "first"}, {"id": "doc-8", "text": "second"}])
    write_jsonl(tmp_path / "two.jsonl", [{"id": "doc-9", "text": "third"}, {"text": "no id: named by its row"}])
    cfg = CorpusConfig()
    rows = [scan_file(url, name, cfg) for url, name in list_files([str(tmp_path)])]
    check_unique_ids(rows, cfg)  # all distinct
    write_jsonl(tmp_path / "two.jsonl", [{"id": "doc-7", "text": "third"}])
    rows = [scan_file(url, name, cfg) for url, name in list_files([str(tmp_path)])]
    with pytest.raises(CorpusError) as err:
        check_unique_ids(rows, cfg)
    assert "'doc-7'" in str(err.value) and "one.jsonl" in str(err.value) and "two.jsonl" in str(err.value)
    assert "\n" not in str(err.value)
    check_unique_ids(rows, CorpusConfig(id_field=""))  # positional ids: nothing to check


def test_a_corpus_with_no_documents_or_mostly_one_skip_reason_stops_in_one_line():
    from climb_ray.config import Config
    from climb_ray.stages.corpus import check_yield

    cfg = Config()
    cfg.corpus.paths = ["data/"]
    reasons = {k: 0 for k in SkipCounts().__dict__}
    with pytest.raises(CorpusError, match=r"gave 0 documents from 1 files \(skipped rows: not_utf8 4\)"):
        check_yield({"files": 1, "documents": 0, "skipped": 4, "skipped_by_reason": {**reasons, "not_utf8": 4}}, cfg)
    with pytest.raises(CorpusError, match="60 of 100 rows skipped as missing_field.*corpus.text_field"):
        check_yield({"files": 1, "documents": 40, "skipped": 60, "skipped_by_reason": {**reasons, "missing_field": 60}},
                    cfg)
    check_yield({"files": 1, "documents": 60, "skipped": 40, "skipped_by_reason": {**reasons, "empty": 40}}, cfg)
    cfg.corpus.max_skip_share = 1.0
    check_yield({"files": 1, "documents": 40, "skipped": 60, "skipped_by_reason": {**reasons, "missing_field": 60}}, cfg)


def test_two_different_ids_sharing_a_hash_are_not_called_duplicates(tmp_path, monkeypatch):
    """The check compares 64-bit hashes first; a clash between different ids is confirmed on the ids."""
    from climb_ray import corpus
    from climb_ray.corpus import check_unique_ids

    monkeypatch.setattr(corpus, "id_hash", lambda doc_id: 7)  # every id clashes
    write_jsonl(tmp_path / "one.jsonl", [{"id": "a", "text": "first"}, {"id": "b", "text": "second"}])
    write_jsonl(tmp_path / "two.jsonl", [{"id": "c", "text": "third"}])
    cfg = CorpusConfig()
    rows = [scan_file(url, name, cfg) for url, name in list_files([str(tmp_path)])]
    check_unique_ids(rows, cfg)
    write_jsonl(tmp_path / "two.jsonl", [{"id": "a", "text": "third"}])
    rows = [scan_file(url, name, cfg) for url, name in list_files([str(tmp_path)])]
    with pytest.raises(CorpusError, match="'a' belongs to 2 documents"):
        check_unique_ids(rows, cfg)
