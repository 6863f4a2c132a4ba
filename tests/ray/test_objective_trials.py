"""Each trial's target scores on the way from a proxy to the search: the Tune trial's result and the
searcher's record (no Ray cluster needed: the trainable and the Searcher are called directly)."""

import json

import numpy as np
import pytest

from climb_ray.config_io import load_config
from climb_ray.objective import combine, shares
from tests.conftest import ROOT

pytestmark = pytest.mark.ray


@pytest.mark.slow
def test_a_proxy_trial_reports_each_targets_score_under_its_file_stem(source_shards, tmp_path):
    from climb_ray.adapters.ray_tune import components_of, proxy_trial

    folder, names, sources, target = source_shards
    rows = [json.loads(line) for line in open(target)]
    second = tmp_path / "second.jsonl"
    second.write_text("".join(json.dumps(r) + "\n" for r in rows[-20:]))
    cfg = load_config(ROOT / "climb_ray" / "configs" / "demo.yaml", [
        f"target.paths=[{target},{second}]", "target.weights=[3,1]", "target.max_docs=20", "proxy.steps=4",
        "proxy.batch_size=8", "proxy.context=64", "proxy.threads=1"])
    result = proxy_trial({"weights": [1 / len(names)] * len(names)}, cfg, str(folder))
    parts = components_of(result)
    assert list(parts) == ["target", "second"] and parts["target"] != parts["second"]
    assert result["score"] == combine(list(parts.values()), shares([3, 1], 2))


def test_the_searcher_records_each_trials_target_scores_and_a_single_score_as_none():
    from climb_ray.adapters.ray_tune import ClimbSearcher
    from climb_ray.config import PredictorConfig, SearchConfig
    from climb_ray.samplers import RegMixSampler
    from climb_ray.search import ClimbSearch

    search = ClimbSearch(RegMixSampler(np.array([0.4, 0.3, 0.2, 0.1])), ["sc00", "sc01", "sc02", "sc03"],
                         SearchConfig(schedule=[3], n_candidates=500), PredictorConfig(num_rounds=30), seed=1)
    s = ClimbSearcher(search)
    for n in range(3):
        s.suggest(f"t{n}")
    s.on_trial_complete("t0", {"score": 0.5, "score/a": 0.25, "score/b": 0.75})
    s.on_trial_complete("t1", {"score": 0.1})  # proxy.command's trainer: one score
    s.on_trial_complete("t2", error=True)
    assert [t.components for t in search.trials] == [{"a": 0.25, "b": 0.75}, None, None]
    restored = ClimbSearch(search.sampler, search.names, search.search, search.predictor_cfg)
    restored.restore(json.loads(json.dumps(search.state())))
    assert [t.components for t in restored.trials] == [{"a": 0.25, "b": 0.75}, None, None]
