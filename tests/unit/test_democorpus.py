import json
from collections import Counter

import pytest

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


def test_the_demo_target_holds_its_sources_in_the_recorded_proportion_and_none_of_the_corpus(tmp_path):
    from climb_ray.democorpus import TARGET_MIX

    info = build_demo_corpus(tmp_path / "c.jsonl", docs_per_source=50, seed=0, target_path=tmp_path / "t.jsonl")
    target, corpus = rows(tmp_path / "t.jsonl"), rows(tmp_path / "c.jsonl")
    assert len(TARGET_MIX) == 2 and len(set(TARGET_MIX.values())) == 2  # two sources, unequal parts
    assert info["target"]["mix"] == TARGET_MIX and info["target"]["documents"] == len(target) == 200
    counts = Counter(d["source"] for d in target)
    assert counts == info["target"]["sources"] == {s: round(200 * w) for s, w in TARGET_MIX.items()}
    first = Counter(d["source"] for d in target[:20])  # a target cut to its first 20 keeps the shares
    assert first == {s: round(20 * w) for s, w in TARGET_MIX.items()}
    assert not {d["text"] for d in target} & {d["text"] for d in corpus}


def test_a_target_mix_in_thirds_is_split_by_largest_remainders():
    from climb_ray.democorpus import target_counts

    assert target_counts({"bible": 1, "news": 1, "wikipedia": 1}, 200) == {"bible": 67, "news": 67, "wikipedia": 66}
    with pytest.raises(ValueError, match="'poetry'"):
        target_counts({"poetry": 1.0}, 10)


def test_the_demo_corpus_is_rebuilt_when_the_target_mix_changes_and_the_stale_search_removed(tmp_path, monkeypatch):
    from climb_ray import commands, democorpus
    from climb_ray.config_io import load_config
    from tests.conftest import ROOT

    cfg = load_config(ROOT / "climb_ray" / "configs" / "demo.yaml",
                      [f"corpus.paths=[{tmp_path / 'c.jsonl'}]", f"target.paths=[{tmp_path / 't.jsonl'}]",
                       f"run_dir={tmp_path / 'run'}"])
    commands.ensure_demo_corpus(cfg, 30)
    first = (tmp_path / "t.jsonl").read_bytes()
    (tmp_path / "run" / "search").mkdir(parents=True)
    (tmp_path / "run" / "search" / "_DONE").write_text("{}")
    commands.ensure_demo_corpus(cfg, 30)  # same settings: kept
    assert (tmp_path / "t.jsonl").read_bytes() == first and (tmp_path / "run" / "search").exists()
    monkeypatch.setattr(democorpus, "TARGET_MIX", {"wikipedia": 0.5, "bible": 0.5})
    commands.ensure_demo_corpus(cfg, 30)
    meta = json.loads((tmp_path / "c.jsonl.meta.json").read_text())
    assert meta["target"]["mix"] == {"wikipedia": 0.5, "bible": 0.5}
    assert Counter(d["source"] for d in rows(tmp_path / "t.jsonl")) == {"wikipedia": 100, "bible": 100}
    assert not (tmp_path / "run" / "search").exists()  # it was scored on the old target
