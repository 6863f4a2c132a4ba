import json
from collections import Counter

from climb_ray.democorpus import MAX_WORDS, MIN_WORDS, SOURCES, build_demo_corpus, pack_units


def rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def test_full_demo_corpus_has_enough_real_documents_of_every_kind(tmp_path):
    info = build_demo_corpus(tmp_path / "c.jsonl", docs_per_source=800, seed=0)
    docs = rows(tmp_path / "c.jsonl")
    assert len(docs) == info["documents"] >= 3000
    counts = Counter(d["source"] for d in docs)
    assert set(counts) == set(SOURCES) and len(SOURCES) >= 4
    assert min(counts.values()) >= 400
    assert all(MIN_WORDS <= len(d["text"].split()) <= MAX_WORDS for d in docs)
    assert len({d["id"] for d in docs}) == len(docs)
    assert len({d["text"] for d in docs}) > 0.99 * len(docs)
    texts = {d["source"]: " ".join(x["text"] for x in docs if x["source"] == d["source"]) for d in docs}
    assert "LORD" in texts["bible"] and "def" not in texts["bible"].split()[:1000]
    assert "Return" in texts["python_docs"]


def test_demo_corpus_is_deterministic_for_a_seed(tmp_path):
    build_demo_corpus(tmp_path / "a.jsonl", docs_per_source=50, seed=3)
    build_demo_corpus(tmp_path / "b.jsonl", docs_per_source=50, seed=3)
    build_demo_corpus(tmp_path / "c.jsonl", docs_per_source=50, seed=4)
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.jsonl", "b.jsonl", "c.jsonl"))
    assert a == b and a != c


def test_packing_respects_word_bounds_and_cuts_huge_units():
    units = ["word " * 10] * 7 + ["long " * 900, "tail " * 5]
    docs = list(pack_units(units, iter([35] * 100)))
    lengths = [len(d.split()) for d in docs]
    assert all(MIN_WORDS <= n <= MAX_WORDS for n in lengths)
    assert lengths == [40, 30, 400, 400, 100]  # the 5-word tail is under MIN_WORDS: dropped
