import numpy as np
import fsspec
import pytest

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


def test_joined_chunk_shards_equal_one_shard_written_in_order_with_document_offsets(tmp_path):
    parts = [docs(1, 30), docs(2, 0), docs(3, 25)]
    for i, part in enumerate(parts):
        writer = tk.ShardWriter(str(tmp_path / f"part{i}"), np.uint16)
        if part:
            writer.add("sc00", part)
        writer.close()
    fs = fsspec.filesystem("file")
    counts = tk.concat_parts(fs, [str(tmp_path / f"part{i}") for i in range(3)], str(tmp_path), ["sc00"], np.uint16)
    everything = [d for part in parts for d in part]
    joined = np.fromfile(tmp_path / "sc00.bin", dtype=np.uint16)
    assert np.array_equal(joined, np.concatenate(everything))
    starts = np.fromfile(tmp_path / "sc00.idx", dtype=np.uint64)
    assert list(starts) == list(np.concatenate([[0], np.cumsum([len(d) for d in everything])[:-1]]))
    assert np.all(joined[starts[1:].astype(np.int64) - 1] == 0)  # every document ends with end-of-text
    assert counts["sc00"].tokens == len(joined) and counts["sc00"].documents == 55


def test_shards_in_an_object_store_are_cached_locally_and_read_the_same(tmp_path):
    fs = fsspec.filesystem("memory")
    writer = tk.ShardWriter(str(tmp_path), np.uint16)
    writer.add("sc00", docs(4, 10))
    writer.add("sc01", docs(5, 5))
    shards = writer.close()
    for name in ("sc00", "sc01"):
        fs.put(str(tmp_path / f"{name}.bin"), f"/run/tokens/{name}.bin")
    tk.write_meta(fs, "/run/tokens", dtype=np.uint16, eot=0, vocab_size=500, tokenizer="bpe", shards=shards,
                  names=["sc00", "sc01", "sc02"])
    remote = tk.Shards("memory://run/tokens")
    assert remote.names == ["sc00", "sc01", "sc02"]
    assert np.array_equal(remote.arrays[0], np.fromfile(tmp_path / "sc00.bin", dtype=np.uint16))
    assert list(remote.tokens) == [shards["sc00"].tokens, shards["sc01"].tokens, 0]
    assert np.allclose(tk.token_shares(remote.meta), remote.tokens / remote.tokens.sum())


def test_meta_json_is_replaced_whole_or_not_at_all(tmp_path):
    """A write that fails half-way (here: a value JSON cannot hold) leaves the previous meta.json."""
    fs = fsspec.filesystem("file")
    good = {"sc00": tk.ClusterShard(tokens=10, documents=2)}
    tk.write_meta(fs, str(tmp_path), dtype=np.uint16, eot=0, vocab_size=500, tokenizer="bpe", shards=good,
                  names=["sc00"])
    before = (tmp_path / "meta.json").read_text()
    bad = {"sc00": tk.ClusterShard(tokens=object(), documents=2)}
    with pytest.raises(TypeError):
        tk.write_meta(fs, str(tmp_path), dtype=np.uint16, eot=0, vocab_size=500, tokenizer="bpe", shards=bad,
                      names=["sc00"])
    assert (tmp_path / "meta.json").read_text() == before
