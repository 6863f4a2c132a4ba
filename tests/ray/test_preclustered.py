"""Pre-clustered corpora (corpus.label_field), as ClimbLab or Nemotron-CC ship them: the labels are
the super-clusters, with text or with token IDs (corpus.token_ids_field)."""

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from climb_ray.artifacts import RunDir
from climb_ray.config_io import load_config
from climb_ray.corpus import CorpusError
from climb_ray.export import ExportError
from climb_ray.stages.export import check_export
from climb_ray.stages.pipeline import run_pipeline
from climb_ray.stages.search import make_search
from climb_ray.tokens import Shards
from tests.conftest import ROOT

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def config(folder, run, *more):
    return load_config(ROOT / "climb_ray" / "configs" / "demo.yaml", [
        f"corpus.paths=[{folder}]", f"run_dir={run}", "embed.chunk_docs=150", "tokens.vocab_size=1024",
        "tokens.train_docs=150", "proxy.steps=8", "proxy.batch_size=8", "proxy.context=64", "search.schedule=[4,2]",
        "search.n_candidates=2000", "export.max_epochs=0", *more])


@pytest.fixture(scope="module")
def labelled(demo_corpus, tmp_path_factory):
    """The small demo corpus as two Parquet files labelled by source, plus a label `tiny` with 2 short
    documents (fewer tokens than one proxy sequence)."""
    folder = tmp_path_factory.mktemp("labelled")
    rows = [json.loads(line) for line in open(demo_corpus)]
    rows += [{"id": "tiny-0", "text": "A short note.", "source": "tiny"},
             {"id": "tiny-1", "text": "Another one.", "source": "tiny"}]
    for part, chunk in enumerate([rows[::2], rows[1::2]]):
        pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"], "domain": r["source"]} for r in chunk]),
                       folder / f"part{part}.parquet")
    return folder, rows


@pytest.fixture(scope="module")
def labelled_run(ray_session, labelled, demo_corpus, tmp_path_factory):
    folder, rows = labelled
    run = tmp_path_factory.mktemp("labelled_run") / "run"
    cfg = config(folder, run, "corpus.label_field=domain", f"target.paths=[{demo_corpus.parent / 'demo_target.jsonl'}]")
    report = run_pipeline(cfg, until="search")
    return cfg, run, {r.stage: r.info for r in report.results}


def test_the_labels_are_the_super_clusters_and_nothing_is_embedded(labelled_run, labelled):
    cfg, run, info = labelled_run
    labels = sorted({r["source"] for r in labelled[1]})
    report = json.loads((run / "cluster" / "clusters.json").read_text())
    assert [s["label"] for s in report["super_clusters"]] == labels
    assert [s["name"] for s in report["super_clusters"]] == [f"sc{i:02d}-{lab}" for i, lab in enumerate(labels)]
    counts = {lab: sum(r["source"] == lab for r in labelled[1]) for lab in labels}
    assert [s["documents"] for s in report["super_clusters"]] == [counts[lab] for lab in labels]
    assert all(s["top_terms"] and s["examples"] for s in report["super_clusters"])  # the report reads the text
    assert info["embed"]["label_field"] == "domain" and not list((run / "embed").glob("chunk-*"))
    meta = json.loads((run / "tokens" / "meta.json").read_text())
    assert [meta["documents"][f"sc{i:02d}"] for i in range(len(labels))] == [counts[lab] for lab in labels]


def test_each_shard_holds_exactly_its_labels_documents_of_the_proxies_sample(labelled_run, labelled):
    from tokenizers import Tokenizer

    _, run, _ = labelled_run
    labels = sorted({r["source"] for r in labelled[1]})
    tok = Tokenizer.from_file(str(run / "tokens" / "tokenizer.json"))
    docs = pq.read_table(sorted((labelled[0]).glob("*.parquet"))).to_pylist()  # file order: part0, part1
    sampled = set(pq.read_table(run / "tokens" / "docs").column("doc_id").to_pylist())  # tokens.sample=auto
    meta = json.loads((run / "tokens" / "meta.json").read_text())
    assert not all(meta["sample"]["whole"].values()) and len(sampled) < len(docs)
    for i, label in enumerate(labels):
        expected = np.concatenate([tok.encode(d["text"]).ids + [0] for d in docs
                                   if d["domain"] == label and d["id"] in sampled])
        assert np.array_equal(np.asarray(Shards(str(run / "tokens")).arrays[i]), expected), label


def test_a_label_with_very_few_documents_is_held_to_its_epoch_cap(labelled_run):
    cfg, run, info = labelled_run
    meta = json.loads((run / "tokens" / "meta.json").read_text())
    names = meta["clusters"]
    tiny = names.index("sc04")  # sorted labels: bible, dictionary, news, python, tiny, wikipedia
    tokens = np.array([meta["tokens"][n] for n in names], dtype=np.float64)
    assert tokens[tiny] < cfg.proxy.context  # not even one training sequence
    budget = cfg.proxy.steps * cfg.proxy.batch_size * cfg.proxy.context
    trials = pq.read_table(run / "search" / "trials.parquet").to_pylist()
    assert len(trials) == 6 and all(t["status"] == "done" for t in trials)
    for t in trials:
        weights = np.array([t[f"w_{n}"] for n in names])
        assert np.all(weights * budget <= cfg.search.max_epochs * tokens + 1e-6), weights
    proposals = make_search(cfg, meta).sampler.sample(2000, np.random.default_rng(1))
    assert np.all(proposals[:, tiny] * budget <= cfg.search.max_epochs * tokens[tiny] + 1e-9)
    asks_too_much = dataclasses.replace(cfg, export=dataclasses.replace(
        cfg.export, weights="sc04=0.5,sc00=0.5", token_budget=5000))
    with pytest.raises(ExportError, match="sc04"):
        check_export(asks_too_much, RunDir(str(run)))


def test_the_search_and_export_run_on_the_labels(labelled_run):
    cfg, run, info = labelled_run
    best = json.loads((run / "search" / "best_mixture.json").read_text())
    assert set(best["weights"]) == {f"sc{i:02d}" for i in range(6)}
    report = run_pipeline(cfg, until="export")
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["rows"] == report.results[-1].info["rows"] > 0


@pytest.fixture(scope="module")
def token_ids(demo_corpus, tmp_path_factory):
    """The small demo corpus as token IDs of the packaged MiniLM tokenizer with integer labels (source
    index), plus broken rows: an empty list, a negative id, a row without a label."""
    from climb_ray.tokens import pretrained_tokenizer

    tok, _ = pretrained_tokenizer("all-MiniLM-L6-v2")
    rows = [json.loads(line) for line in open(demo_corpus)]
    sources = sorted({r["source"] for r in rows})
    table = [{"id": r["id"], "input_ids": tok.encode(r["text"], add_special_tokens=False).ids,
              "cluster": sources.index(r["source"]) * 10} for r in rows]
    table += [{"id": "empty", "input_ids": [], "cluster": 0}, {"id": "negative", "input_ids": [5, -1], "cluster": 0},
              {"id": "unlabelled", "input_ids": [5, 6], "cluster": None}]
    folder = tmp_path_factory.mktemp("token_ids")
    pq.write_table(pa.Table.from_pylist(table), folder / "ids.parquet")
    return folder, table, tok


def test_token_ids_go_to_the_shards_as_they_are_and_export_as_ids(ray_session, token_ids, tmp_path):
    folder, table, tok = token_ids
    cfg = config(folder, tmp_path / "run", "corpus.label_field=cluster", "corpus.token_ids_field=input_ids",
                 "tokens.tokenizer=all-MiniLM-L6-v2", "export.weights=uniform", "export.token_budget=20000")
    report = run_pipeline(cfg, until="export", skip=("search",))
    info = {r.stage: r.info for r in report.results}
    stats = json.loads((tmp_path / "run" / "corpus" / "stats.json").read_text())
    assert stats["skipped_by_reason"]["bad_token_ids"] == 2 and stats["skipped_by_reason"]["missing_label"] == 1
    meta = json.loads((tmp_path / "run" / "tokens" / "meta.json").read_text())
    eot = tok.token_to_id("[SEP]")
    assert meta["eot_id"] == eot and meta["vocab_size"] == tok.get_vocab_size() and meta["dtype"] == "uint16"
    good = table[:-3]
    labels = sorted({r["cluster"] for r in good})
    report_json = json.loads((tmp_path / "run" / "cluster" / "clusters.json").read_text())
    assert [s["label"] for s in report_json["super_clusters"]] == labels == [0, 10, 20, 30, 40]
    for s in report_json["super_clusters"]:  # the report decodes the first ids of sampled documents
        assert s["mean_quality"] is None and s["top_terms"] and s["examples"]
        texts = [tok.decode(r["input_ids"][:256]) for r in good if r["cluster"] == s["label"]]
        assert all(any(" ".join(t.split()).startswith(e.rstrip(".")) for t in texts) for e in s["examples"])
    for i, label in enumerate(labels):
        expected = np.concatenate([r["input_ids"] + [eot] for r in good if r["cluster"] == label])
        assert np.array_equal(np.asarray(Shards(str(tmp_path / "run" / "tokens")).arrays[i]), expected)
    assert info["export"]["token_ids"] and info["export"]["rows"] > 0
    shards = pq.read_table(sorted((tmp_path / "run" / "export").glob("part-*.parquet")))
    assert shards.column_names == ["ids", "cluster", "doc_id"]
    by_id = {r["id"]: r["input_ids"] + [eot] for r in good}
    assert all(ids == by_id[d] for ids, d in zip(shards.column("ids").to_pylist(), shards.column("doc_id").to_pylist()))
    bins = np.concatenate([np.fromfile(p, np.uint16) for p in sorted((tmp_path / "run" / "export").glob("tokens-*.bin"))])
    assert np.array_equal(bins, np.concatenate(shards.column("ids").to_pylist()))


def test_token_ids_outside_the_tokenizers_vocabulary_are_an_error_naming_the_document(ray_session, tmp_path):
    pq.write_table(pa.table({"id": ["ok", "bad"], "ids": [[1, 2, 3], [4, 99999]], "c": ["a", "a"]}),
                   tmp_path / "ids.parquet")
    cfg = config(tmp_path / "ids.parquet", tmp_path / "run", "corpus.label_field=c", "corpus.token_ids_field=ids",
                 "tokens.tokenizer=all-MiniLM-L6-v2")
    with pytest.raises(Exception) as caught:
        run_pipeline(cfg, until="tokens")
    assert "document 'bad' has token id 99999" in str(caught.value) and "30522 ids" in str(caught.value)


def test_integer_labels_in_one_file_and_string_labels_in_another_are_an_error_naming_both(ray_session, tmp_path):
    pq.write_table(pa.table({"text": ["first text", "second"], "c": [1, 2]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"text": ["third text"], "c": ["web"]}), tmp_path / "b.parquet")
    cfg = config(tmp_path, tmp_path / "run", "corpus.label_field=c")
    with pytest.raises(CorpusError, match=r"a.parquet' has integer labels and .*b.parquet' string labels"):
        run_pipeline(cfg, until="cluster")
