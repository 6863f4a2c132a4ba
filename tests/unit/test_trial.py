"""One proxy trial on real text: the demo sources as clusters, held-out Wikipedia as the target."""

import pytest

from climb_ray.config_io import load_config
from climb_ray.mixture import MixtureError
from climb_ray.trial import ProxyRunner
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def runner(source_shards):
    folder, names, sources, target = source_shards
    cfg = load_config(ROOT / "climb_ray" / "configs" / "demo.yaml",
                      [f"target.paths=[{target}]", "proxy.threads=2", "target.max_docs=100"])
    return ProxyRunner(cfg, str(folder)), sources


def weights_on(sources, chosen):
    return [1.0 if s in chosen else 0.0 for s in sources]


@pytest.mark.slow
def test_same_seed_same_mixture_gives_the_identical_score_twice(runner):
    run, sources = runner
    first = run([1, 2, 1, 3, 1], seed=11)
    second = run([1, 2, 1, 3, 1], seed=11)
    assert first["score"] == second["score"] and first["targets"] == second["targets"]
    assert run([1, 2, 1, 3, 1], seed=12)["score"] != first["score"]


@pytest.mark.slow
def test_training_on_the_targets_own_cluster_beats_training_on_unrelated_ones(runner):
    run, sources = runner
    own = run(weights_on(sources, {"wikipedia"}), seed=0)
    unrelated = run(weights_on(sources, {"bible", "dictionary", "python_docs"}), seed=0)
    assert own["score"] > unrelated["score"] + 0.2, (own["score"], unrelated["score"])
    assert own["sequences"][own_name(sources)] == 40 * 16  # steps * batch_size, all from the one cluster


def own_name(sources):
    return f"sc{sources.index('wikipedia'):02d}"


def test_a_mixture_past_the_epoch_cap_is_refused_before_training(runner):
    run, sources = runner
    run.cfg.search.max_epochs = 0.5
    try:
        with pytest.raises(MixtureError, match=f"cluster {own_name(sources)}, which has"):
            run(weights_on(sources, {"wikipedia"}), seed=0)
    finally:
        run.cfg.search.max_epochs = 15.0
