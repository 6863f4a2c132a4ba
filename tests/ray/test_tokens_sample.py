"""tokens.sample: the proxies' seeded sample per cluster, on a run folder made up to its token shards with
every document tokenized (the `finished` fixture: 3 files, 4 super-clusters)."""

import json
import shutil

import numpy as np
import pytest

from climb_ray.artifacts import RunDir
from climb_ray.config import ConfigError
from climb_ray.stages.pipeline import run_pipeline
from tests.conftest import tokens_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

BUDGET = 3000  # tokens a proxy reads: a sample of about 2 x 3000 tokens per cluster of some 20,000


def sampled_run(finished, three_files, folder, *settings):
    run = folder / "run"
    shutil.copytree(finished[0], run)
    cfg = tokens_config(three_files, run, f"tokens.sample={BUDGET}", *settings)
    return run, cfg, run_pipeline(cfg, until="tokens", redo=("tokens",)).results[-1].info


def tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("_DONE", "_STARTED")}


@pytest.fixture(scope="module")
def sample(finished, three_files, tmp_path_factory):
    return sampled_run(finished, three_files, tmp_path_factory.mktemp("sample"))


def test_each_cluster_holds_at_least_the_budget_and_far_less_than_all_and_the_counts_stay_the_whole_corpus(
        finished, sample):
    run, _, info = sample
    full = json.loads((finished[0] / "tokens" / "meta.json").read_text())
    meta = json.loads((run / "tokens" / "meta.json").read_text())
    held = meta["sample"]["tokens"]
    for name in meta["clusters"]:
        parts = sum(len(np.fromfile(run / "tokens" / f"{p['prefix']}.bin", np.uint16)) for p in meta["parts"][name])
        assert parts == held[name] >= BUDGET and not meta["sample"]["whole"][name], name
        assert held[name] < full["tokens"][name], name  # a sample, not the cluster
        assert meta["documents"][name] == full["documents"][name]
        # estimated from samples of 20-40 documents here (benchmarks/bench_tokens_sample.py: 10,000 documents)
        assert meta["tokens"][name] == pytest.approx(full["tokens"][name], rel=0.15), name
    assert sum(meta["tokens"].values()) == pytest.approx(sum(full["tokens"].values()), rel=0.05)
    assert sum(held.values()) < sum(full["tokens"].values()) / 2 and info["sample"]["tokens"] == sum(held.values())


def test_the_same_seed_gives_the_same_sample_byte_for_byte(finished, three_files, sample, tmp_path):
    again, _, _ = sampled_run(finished, three_files, tmp_path)
    assert tree(again / "tokens") == tree(sample[0] / "tokens")


def test_the_search_prior_and_epoch_caps_use_the_whole_corpus_and_a_larger_proxy_asks_for_a_new_sample(sample):
    from climb_ray.mixture import weight_caps
    from climb_ray.stages.search import make_search
    from climb_ray.tokens import token_shares

    run, cfg, _ = sample
    meta = RunDir(str(run)).read_json("tokens/meta.json")
    small = tokens_config(cfg.corpus.paths[0], run, "proxy.steps=1", "proxy.batch_size=4", "proxy.context=128")
    search = make_search(small, meta)
    tokens = np.array([meta["tokens"][n] for n in meta["clusters"]], dtype=np.float64)
    assert np.allclose(search.sampler.prior, token_shares(meta))
    caps = np.minimum(np.minimum(weight_caps(tokens / tokens.sum(), 1.0, 15.0), 1.0), weight_caps(tokens, 512, 15.0))
    assert np.allclose(search.sampler.cap, caps)
    too_big = tokens_config(cfg.corpus.paths[0], run, "proxy.steps=100", "proxy.batch_size=4", "proxy.context=128")
    with pytest.raises(ConfigError, match=r"tokens/ holds a sample of .* tokens of cluster sc0\d.*--redo tokens"):
        make_search(too_big, meta)


def test_a_cluster_whose_sample_comes_out_short_is_tokenized_again_with_more_documents(
        finished, three_files, tmp_path, monkeypatch):
    from climb_ray import token_sample as ts

    real, guesses = ts.sample_bins, []

    def a_tenth_at_first(sizes, want):  # as if a token were 10 units of size: the first guess far too small
        guesses.append(want)
        return real(sizes, want / 10 if len(guesses) == 1 else want)

    monkeypatch.setattr(ts, "sample_bins", a_tenth_at_first)
    run, _, _ = sampled_run(finished, three_files, tmp_path)
    meta = json.loads((run / "tokens" / "meta.json").read_text())
    assert len(guesses) == 2 and all(BUDGET <= t for t in meta["sample"]["tokens"].values())
    plan = json.loads((run / "tokens" / "sample.json").read_text())
    assert plan["bins"] == list(meta["sample"]["bins"].values())


def test_a_cluster_still_short_after_widening_is_taken_whole_in_the_last_round_and_meta_says_what_was_tokenized(
        finished, three_files, tmp_path, monkeypatch):
    from climb_ray import token_sample as ts

    real = ts.sample_bins
    monkeypatch.setattr(ts, "sample_bins", lambda sizes, want: real(sizes, want / 1000))  # every guess far too small
    run, _, _ = sampled_run(finished, three_files, tmp_path)
    full = json.loads((finished[0] / "tokens" / "meta.json").read_text())
    meta = json.loads((run / "tokens" / "meta.json").read_text())
    plan = json.loads((run / "tokens" / "sample.json").read_text())
    assert plan["bins"] == list(meta["sample"]["bins"].values())  # the plan of the parts last tokenized
    whole = meta["sample"]["whole"]
    assert any(whole.values())
    for name, held in meta["sample"]["tokens"].items():
        parts = sum(len(np.fromfile(run / "tokens" / f"{p['prefix']}.bin", np.uint16)) for p in meta["parts"][name])
        assert parts == held and held >= BUDGET, name
        if whole[name]:  # taken whole: exactly the cluster's tokens
            assert held == meta["tokens"][name] == full["tokens"][name], name


def test_the_export_of_a_sample_tokenizes_everything_and_equals_the_export_of_every_document(
        finished, three_files, sample, tmp_path):
    settings = ["export.weights=0.4,0.3,0.2,0.1", "export.token_budget=30000", "export.max_epochs=0"]
    assert all(json.loads((finished[0] / "tokens" / "meta.json").read_text())["sample"]["whole"].values())
    outputs = []
    for name, source, more in [("full", finished[0], []), ("sample", sample[0], [f"tokens.sample={BUDGET}"])]:
        run = tmp_path / name / "run"
        shutil.copytree(source, run)
        cfg = tokens_config(three_files, run, *settings, *more)
        run_pipeline(cfg, until="export", skip=("search",))
        outputs.append(run)
    full, from_sample = outputs
    exported = [{p.name: p.read_bytes() for p in (r / "export").iterdir() if p.name not in ("_DONE", "_STARTED")}
                for r in outputs]
    manifests = [json.loads(e.pop("manifest.json")) for e in exported]
    assert exported[0] == exported[1] and len(exported[0]) >= 1  # every shard, byte for byte
    for m in manifests:
        m["source"].pop("run_dir")
    assert manifests[0] == manifests[1]
    whole, parts = tree(full / "tokens"), tree(from_sample / "tokens" / "full")
    for path in [p for p in whole if p.startswith(("sc", "docs/"))]:  # every document's tokens, as the stage made them
        assert parts[path] == whole[path], path
