import json

import numpy as np
import fsspec
import pytest

from climb_ray import token_sample as ts
from climb_ray import tokens as tk
from climb_ray.embed import resolve_model

TEXTS = ["In the beginning God created the heaven and the earth.",
         "def parse(text): return json.loads(text)  # naïve ünïcode",
         "The Lee corpus holds news stories from the ABC."] * 20


def test_trained_bpe_decodes_back_to_the_text_and_reserves_the_end_of_text_id():
    tok = tk.train_bpe(TEXTS, 300)
    assert tk.eot_id(tok) == 0 and tok.get_vocab_size() <= 300
    for text in TEXTS[:3]:
        assert tok.decode(tok.encode(text).ids) == text
    docs = tk.encode_docs(tok, TEXTS[:3], 0, tk.shard_dtype(300))
    assert all(d[-1] == 0 and d.dtype == np.uint16 and 0 not in d[:-1] for d in docs)


def test_a_pretrained_tokenizer_loads_by_path_with_its_end_token():
    tok, eot = tk.pretrained_tokenizer(str(resolve_model("all-MiniLM-L6-v2")))
    assert eot == "[SEP]" and tk.eot_id(tok, eot) == 102
    assert tk.shard_dtype(tok.get_vocab_size()) == np.uint16 and tk.shard_dtype(100_000) == np.uint32


def test_a_missing_pretrained_tokenizer_names_the_value(tmp_path):
    with pytest.raises(ValueError, match="tokens.tokenizer='.*nowhere'"):
        tk.pretrained_tokenizer(str(tmp_path / "nowhere"))


def test_a_tokenizer_that_cannot_be_loaded_is_a_config_error_and_packaged_names_and_json_files_load(tmp_path):
    from climb_ray.config import ConfigError

    (tmp_path / "broken.json").write_text("{not json")
    for bad in (str(tmp_path / "nowhere"), str(tmp_path / "broken.json")):
        with pytest.raises(ConfigError, match=f"tokens.tokenizer='{bad}'"):
            tk.pretrained_tokenizer(bad)
    by_name, eot = tk.pretrained_tokenizer("all-MiniLM-L6-v2")  # the packaged copy, offline
    assert eot == "[SEP]"
    by_name.save(str(tmp_path / "tokenizer.json"))
    from_file, eot = tk.pretrained_tokenizer(str(tmp_path / "tokenizer.json"))
    assert eot == "[SEP]" and from_file.encode("hello world").ids == by_name.encode("hello world").ids


def test_document_sample_does_not_depend_on_the_order_documents_come_in():
    ids = [f"doc-{i}" for i in range(2000)]
    picked = {d for d in ids if tk.hash_fraction(d, 7) < 0.1}
    assert picked == {d for d in reversed(ids) if tk.hash_fraction(d, 7) < 0.1}
    assert 150 < len(picked) < 250 and picked != {d for d in ids if tk.hash_fraction(d, 8) < 0.1}


def docs(seed, n):
    rng = np.random.default_rng(seed)
    return [np.append(rng.integers(1, 500, rng.integers(1, 40)), 0).astype(np.uint16) for _ in range(n)]


def test_a_part_holds_its_documents_in_order_with_their_starts_and_counts(tmp_path):
    fs = fsspec.filesystem("file")
    writer = tk.PartWriter(fs, str(tmp_path), "00002-00007", np.uint16)
    first, second = docs(1, 30), docs(3, 25)
    writer.add("sc00", first)
    writer.add("sc01", docs(2, 3))
    writer.add("sc00", [])
    writer.add("sc00", second)
    parts = writer.close()
    everything = first + second
    joined = np.fromfile(tmp_path / "sc00" / "00002-00007.bin", dtype=np.uint16)
    assert np.array_equal(joined, np.concatenate(everything))
    starts = np.fromfile(tmp_path / "sc00" / "00002-00007.idx", dtype=np.uint64)
    assert list(starts) == list(np.concatenate([[0], np.cumsum([len(d) for d in everything])[:-1]]))
    assert np.all(joined[starts[1:].astype(np.int64) - 1] == 0)  # every document ends with end-of-text
    assert parts["sc00"] == tk.Part("sc00/00002-00007", len(joined), 55) and parts["sc01"].documents == 3


def test_joined_parts_slice_as_their_concatenation():
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 500, n).astype(np.uint16) for n in (7, 1, 30, 12)]
    whole, view = np.concatenate(arrays), tk.joined([np.zeros(0, np.uint16)] + arrays, np.uint16)
    assert len(view) == len(whole) and np.array_equal(np.asarray(view), whole)
    for start, stop in [(0, 50), (5, 9), (7, 8), (6, 40), (38, 50), (10, 10), (49, 60), (0, 7)] + [
            tuple(sorted(rng.integers(0, 51, 2))) for _ in range(200)]:
        assert np.array_equal(view[start:stop], whole[start:stop]), (start, stop)
    assert tk.joined(arrays[:1], np.uint16) is arrays[0] and len(tk.joined([], np.uint16)) == 0


def test_a_cluster_of_many_parts_keeps_a_bounded_number_of_files_open(tmp_path):
    """A corpus of many files gives many parts: each is mapped only while read, at most MAX_OPEN_PARTS
    at once (each map holds a file descriptor; systems cap both), and reads the same."""
    import os

    rng = np.random.default_rng(2)
    n = tk.MAX_OPEN_PARTS + 200
    arrays = [rng.integers(0, 500, int(rng.integers(1, 20))).astype(np.uint16) for _ in range(n)]
    for i, a in enumerate(arrays):
        a.tofile(tmp_path / f"p{i}.bin")
    tk._open_map.cache_clear()
    before = len(os.listdir("/proc/self/fd"))
    view = tk.joined([tk._memmap(str(tmp_path / f"p{i}.bin"), np.uint16, lazy=True) for i in range(n)], np.uint16)
    whole = np.concatenate(arrays)
    assert np.array_equal(np.asarray(view), whole)
    for start in rng.integers(0, len(whole) - 30, 300):
        assert np.array_equal(view[start:start + 30], whole[start:start + 30])
    opened = len(os.listdir("/proc/self/fd")) - before
    assert 0 < opened <= tk.MAX_OPEN_PARTS, opened
    assert tk._open_map.cache_info().currsize == tk.MAX_OPEN_PARTS


def test_a_mixture_stream_over_parts_trains_on_the_batches_of_the_joined_shard():
    from climb_ray.mixture import MixtureStream

    rng = np.random.default_rng(1)
    clusters = [[rng.integers(0, 500, n).astype(np.uint16) for n in sizes] for sizes in ([300, 5, 200], [90], [40, 400])]
    streams = [MixtureStream(arrays, ["sc00", "sc01", "sc02"], [0.5, 0.2, 0.3], n_sequences=64, seq_len=16,
                             max_epochs=4, seed=3)
               for arrays in ([tk.joined(c, np.uint16) for c in clusters], [np.concatenate(c) for c in clusters])]
    assert all(np.array_equal(streams[0].batch(i, 8), streams[1].batch(i, 8)) for i in range(8))


def test_shards_in_an_object_store_are_written_there_cached_locally_and_read_the_same(tmp_path):
    fs = fsspec.filesystem("memory")
    parts = {"sc00": [], "sc01": []}
    for stem, seed in (("00000-00000", 4), ("00000-00001", 6)):
        writer = tk.PartWriter(fs, "/run/tokens", stem, np.uint16)
        writer.add("sc00", docs(seed, 10))
        if stem.endswith("0"):
            writer.add("sc01", docs(5, 5))
        for name, part in writer.close().items():
            parts[name].append(part)
    tk.write_meta(fs, "/run/tokens", dtype=np.uint16, eot=0, vocab_size=500, tokenizer="bpe", parts=parts,
                  names=["sc00", "sc01", "sc02"])
    remote = tk.Shards("memory://run/tokens")
    assert remote.names == ["sc00", "sc01", "sc02"] and remote.meta["documents"] == {"sc00": 20, "sc01": 5, "sc02": 0}
    expected = np.concatenate(docs(4, 10) + docs(6, 10))
    assert np.array_equal(np.asarray(remote.arrays[0]), expected)
    assert list(remote.tokens) == [len(expected), sum(len(d) for d in docs(5, 5)), 0]
    assert np.allclose(tk.token_shares(remote.meta), remote.tokens / remote.tokens.sum())


def test_a_run_folder_from_before_parts_reads_its_one_shard_per_cluster(tmp_path):
    fs = fsspec.filesystem("file")
    writer = tk.PartWriter(fs, str(tmp_path / "new"), "00000-00000", np.uint16)
    writer.add("sc00", docs(4, 10))
    parts = writer.close()
    (tmp_path / "sc00.bin").write_bytes((tmp_path / "new" / "sc00" / "00000-00000.bin").read_bytes())
    meta = {"dtype": "uint16", "eot_id": 0, "vocab_size": 500, "tokenizer": "bpe", "clusters": ["sc00", "sc01"],
            "tokens": {"sc00": parts["sc00"].tokens, "sc01": 0}, "documents": {"sc00": 10, "sc01": 0}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert tk.cluster_parts(meta, "sc00") == [tk.Part("sc00", parts["sc00"].tokens, 10)]
    assert np.array_equal(tk.Shards(str(tmp_path)).arrays[0], np.concatenate(docs(4, 10)))


def test_meta_json_is_replaced_whole_or_not_at_all(tmp_path):
    """A write that fails half-way (here: a value JSON cannot hold) leaves the previous meta.json."""
    fs = fsspec.filesystem("file")
    good = {"sc00": [tk.Part("sc00/00000-00000", tokens=10, documents=2)]}
    tk.write_meta(fs, str(tmp_path), dtype=np.uint16, eot=0, vocab_size=500, tokenizer="bpe", parts=good,
                  names=["sc00"])
    before = (tmp_path / "meta.json").read_text()
    bad = {"sc00": [tk.Part("sc00/00000-00000", tokens=object(), documents=2)]}
    with pytest.raises(TypeError):
        tk.write_meta(fs, str(tmp_path), dtype=np.uint16, eot=0, vocab_size=500, tokenizer="bpe", parts=bad,
                      names=["sc00"])
    assert (tmp_path / "meta.json").read_text() == before


def test_a_sample_takes_each_cluster_up_to_the_key_bin_that_reaches_its_want_or_all_of_a_small_one():
    sizes = np.array([[5, 5, 5, 5], [1, 1, 1, 1], [0, 0, 0, 0]])
    assert ts.sample_bins(sizes, np.array([7, 10, 3])).tolist() == [1, 3, 3]  # 10 >= 7; short: all; empty: all
    assert ts.sample_bins(sizes, np.array([5, 2, 1])).tolist() == [0, 1, 3]
    assert ts.sample_need(1000, 15) == 1000 and ts.sample_need(1000, 0.5) == 2000


def test_whole_corpus_tokens_are_the_samples_tokens_per_unit_of_size_and_a_whole_cluster_its_own():
    full = ts.estimate_tokens(np.array([300, 50]), np.array([100.0, np.inf]), np.array([1000.0, 40.0]))
    assert full.tolist() == [3000, 50]


def test_a_proxy_larger_than_the_sample_was_made_for_is_refused_naming_the_cluster():
    from climb_ray.config import ConfigError

    meta = {"clusters": ["sc00", "sc01"], "sample": {"budget": 100, "tokens": {"sc00": 250, "sc01": 30},
                                                      "whole": {"sc00": False, "sc01": True}}}
    ts.check_sample(meta, 250, 15.0, "a proxy")  # sc01 is whole: any proxy the epoch caps allow
    ts.check_sample({"clusters": ["sc00"]}, 10**9, 15.0, "a proxy")  # every document tokenized
    with pytest.raises(ConfigError, match=r"250 tokens of cluster sc00, sized for proxies of 100 tokens; a proxy "
                                          r"reads 251 .*--redo tokens"):
        ts.check_sample(meta, 251, 15.0, "a proxy")
    with pytest.raises(ConfigError, match="sc00"):
        ts.check_sample(meta, 200, 0.5, "a proxy")  # 0.5 passes at most: it needs 400
