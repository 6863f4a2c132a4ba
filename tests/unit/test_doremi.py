"""DoReMi (climb_ray.baselines.doremi): the weight update, excess losses, epoch caps and a tiny run."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from climb_ray.baselines.doremi import (DoReMiResult, domain_excess, doremi_steps, dro_loss, epoch_caps,
                                        fit_to_caps, run_doremi, update_weights)
from climb_ray.config import Config, ProxyConfig
from climb_ray.mixture import MixtureError, MixtureStream

TINY = ProxyConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, context=32, batch_size=8,
                   steps=10, lr=3e-3, warmup_steps=2)
VOCAB = 64


def tiny_config(steps: int = 30, **doremi) -> Config:
    cfg = Config()
    cfg.proxy = TINY
    cfg.search.max_epochs = 100.0
    cfg.doremi = dataclasses.replace(cfg.doremi, steps=steps, **doremi)
    return cfg


def domains(rng: np.random.Generator, n: int = 4096) -> tuple[list[np.ndarray], list[str]]:
    """Random tokens (nothing to learn), a period-8 cycle and a repeated 40-token phrase."""
    noise = rng.integers(0, VOCAB, size=n)
    cycle = np.tile(np.arange(8), n // 8)
    phrase = np.tile(rng.permutation(VOCAB)[:40], n // 40 + 1)[:n]
    return [a.astype(np.uint16) for a in (noise, cycle, phrase)], ["noise", "cycle", "phrase"]


# update_weights

def test_update_keeps_weights_on_the_simplex_for_random_and_extreme_excess():
    rng, k, c = np.random.default_rng(0), 5, 1e-3
    for excess in [rng.random(k), 3 * rng.normal(size=k), np.full(k, 1e6), np.array([1e308, 0, 5, 1e308, 0]),
                   np.array([np.inf, 0, 0, 1e300, 0])]:
        for step_size in (1.0, 1e3):
            w = update_weights(rng.dirichlet(np.ones(k)), excess, step_size=step_size, smoothing=c)
            assert np.isfinite(w).all() and w.sum() == pytest.approx(1.0) and (w >= c / k - 1e-15).all()


def test_update_is_the_multiplicative_rule_mixed_with_uniform():
    a, excess = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.0, 2.0, 1.0])
    raw = a * np.exp(0.7 * excess)
    want = 0.99 * raw / raw.sum() + 0.01 / 4
    assert np.allclose(update_weights(a, excess, step_size=0.7, smoothing=0.01), want)


def test_update_moves_weight_to_the_largest_excess_and_away_from_zero_excess():
    a = np.full(4, 0.25)
    w = update_weights(a, np.array([0.0, 0.5, 2.0, 1.0]), step_size=1.0, smoothing=1e-3)
    assert np.argmax(w - a) == 2 and w[0] < a[0]


def test_smoothing_bounds_each_weight_to_c_over_k_and_one_minus_c_plus_c_over_k():
    c, k = 0.1, 4
    w = update_weights(np.full(k, 1 / k), np.array([1e6, 0, 0, 0]), step_size=1.0, smoothing=c)
    assert w[0] == pytest.approx(1 - c + c / k) and np.allclose(w[1:], c / k)


def test_update_refuses_nan_excess_naming_it():
    with pytest.raises(ValueError, match="nan"):
        update_weights(np.full(2, 0.5), np.array([np.nan, 1.0]), step_size=1.0, smoothing=0.0)


# domain_excess and the DRO loss

def test_excess_clips_each_token_at_zero_before_averaging_and_absent_domains_get_zero():
    proxy = np.array([[2.0, 1.0], [1.0, 1.0], [3.0, 3.0]])
    ref = np.array([[1.0, 2.0], [1.0, 1.0], [0.0, 0.5]])
    for convert in (np.asarray, torch.tensor):
        excess, tokens = domain_excess(convert(proxy), convert(ref), convert(np.array([0, 0, 2])), 3)
        # domain 0: token differences 1, -1, 0, 0 -> clipped sum 1 over 4 tokens (unclipped: 0)
        assert np.allclose(excess, [0.25, 0.0, 2.75]) and tokens.tolist() == [4, 0, 2]


def test_excess_refuses_a_domain_outside_the_clusters():
    with pytest.raises(ValueError, match="domain 3"):
        domain_excess(np.zeros((1, 2)), np.zeros((1, 2)), [3], 3)


def test_dro_loss_is_the_weighted_sum_of_the_present_domains_mean_losses():
    losses = torch.tensor([[1.0, 3.0], [5.0, 5.0], [4.0, 0.0]])
    weights = np.array([0.5, 0.2, 0.3])
    loss = dro_loss(losses, np.array([0, 0, 2]), weights)
    assert float(loss) == pytest.approx(0.5 * (1 + 3 + 5 + 5) / 4 + 0.3 * (4 + 0) / 2)


# epoch caps

def test_fit_to_caps_respects_the_caps_and_sums_to_one():
    rng = np.random.default_rng(1)
    for _ in range(50):
        caps = rng.random(6) * 0.5
        caps *= max(1.0, 1.05 / caps.sum())
        w = fit_to_caps(rng.dirichlet(np.full(6, 0.3)), caps)
        assert w.sum() == pytest.approx(1.0) and (w <= caps + 1e-12).all() and (w >= 0).all()


def test_fit_to_caps_leaves_weights_within_loose_caps_unchanged():
    assert np.array_equal(fit_to_caps(np.full(4, 0.25), np.full(4, 0.5)), np.full(4, 0.25))


def test_fit_to_caps_hands_the_excess_to_uncapped_domains_in_proportion_to_their_weights():
    assert np.allclose(fit_to_caps([0.5, 0.3, 0.2], [0.2, 1.0, 1.0]), [0.2, 0.48, 0.32])
    assert np.allclose(fit_to_caps([0.5, 0.3, 0.2], [0.2, 0.35, 1.0]), [0.2, 0.35, 0.45])  # a second round
    assert np.allclose(fit_to_caps([1.0, 0.0, 0.0], [0.5, 0.1, 0.4]), [0.5, 0.1, 0.4])  # by capacity when no weight


def test_fit_to_caps_names_the_total_capacity_when_it_is_below_one():
    with pytest.raises(MixtureError, match="total capacity is 0.6"):
        fit_to_caps(np.full(3, 1 / 3), [0.3, 0.3, 0.0])


def test_epoch_caps_keep_a_mixture_stream_within_max_epochs():
    arrays = [np.zeros(5000, np.uint16), np.zeros(100, np.uint16), np.zeros(20, np.uint16)]
    caps = epoch_caps([len(a) for a in arrays], max_epochs=3.0, n_sequences=64, seq_len=32)
    assert caps.tolist() == [468 / 64, 9 / 64, 0.0]  # whole sequences; shorter than one sequence: 0
    w = fit_to_caps(np.full(3, 1 / 3), caps)
    stream = MixtureStream(arrays, ["a", "b", "c"], w, n_sequences=64, seq_len=32, max_epochs=3.0, seed=0)
    assert stream.counts.tolist() == [55, 9, 0] and stream.epochs.max() <= 3.0


def test_doremi_steps_default_to_half_the_search_budget():
    cfg = Config()
    cfg.search.schedule, cfg.proxy.steps = [4, 2, 1], 100
    assert doremi_steps(cfg) == 350
    cfg.doremi.steps = 12
    assert doremi_steps(cfg) == 12


# end to end on a tiny proxy

@pytest.fixture(scope="module")
def runs():
    torch.set_num_threads(1)
    arrays, names = domains(np.random.default_rng(0))
    cfg = tiny_config()
    seen = []
    first = run_doremi(arrays, names, cfg, VOCAB, seed=0, progress=lambda step, w: seen.append(step))
    return first, run_doremi(arrays, names, cfg, VOCAB, seed=0), run_doremi(arrays, names, cfg, VOCAB, seed=1), seen


def test_run_weights_are_on_the_simplex_and_average_the_history(runs):
    result, _, _, seen = runs
    assert result.history.shape == (30, 3) and seen == list(range(30))
    assert np.allclose(result.history.sum(axis=1), 1.0) and result.weights.sum() == pytest.approx(1.0)
    assert np.allclose(result.weights, result.history.mean(axis=0)) and (result.weights > 0).all()
    assert result.tokens == 2 * 30 * TINY.batch_size * TINY.context


def test_run_is_deterministic_for_a_seed_and_changes_with_it(runs):
    first, again, other, _ = runs
    assert np.array_equal(first.weights, again.weights) and np.array_equal(first.history, again.history)
    assert not np.array_equal(first.weights, other.weights)


def test_random_token_domain_gets_the_least_weight(runs):
    for result in runs[:3]:
        assert np.argmin(result.weights) == 0, result.weights
        assert result.mean_excess[0] < result.mean_excess[1:].min(), result.mean_excess


def test_run_caps_the_training_mixture_of_a_small_cluster_and_uses_the_prior_reference():
    arrays, names = domains(np.random.default_rng(0))
    arrays[1] = arrays[1][:100]  # 3 windows of 32 tokens: 2 epochs allow 6 of the 3 x 8 sequences trained
    cfg = tiny_config(steps=3, reference="prior")
    cfg.search.max_epochs = 2.0
    result = run_doremi(arrays, names, cfg, VOCAB, seed=0)
    assert result.train_weights[1] == pytest.approx(6 / 24) and result.train_weights.sum() == pytest.approx(1.0)
    assert np.allclose(result.reference_weights, [4096 / 8292, 100 / 8292, 4096 / 8292])


def test_to_json_is_serialisable_and_keeps_at_most_200_history_rows():
    k, steps = 3, 1000
    history = np.random.default_rng(0).dirichlet(np.ones(k), size=steps)
    result = DoReMiResult(names=["a", "b", "c"], weights=history.mean(0), final_weights=history[-1],
                          reference_weights=np.full(k, 1 / k), train_weights=np.full(k, 1 / k), history=history,
                          steps=steps, tokens=10, reference_seconds=1.0, proxy_seconds=2.0,
                          reference_loss_last=3.0, proxy_loss_last=3.5, mean_excess=np.zeros(k))
    record = json.loads(json.dumps(result.to_json()))
    assert set(record["weights"]) == {"a", "b", "c"} and len(record["history"]["weights"]) == 200
    assert record["history"]["steps"][0] == 0 and record["history"]["steps"][-1] == steps - 1


def test_the_prior_reference_takes_the_whole_corpus_shares_when_the_arrays_are_a_sample():
    from climb_ray.baselines.doremi import _mixtures

    arrays, _ = domains(np.random.default_rng(0))
    cfg = tiny_config(reference="prior")
    assert np.allclose(_mixtures(arrays, cfg, TINY)[0], 1 / 3)  # equal arrays: equal shares
    assert np.allclose(_mixtures(arrays, cfg, TINY, shares=[0.6, 0.3, 0.1])[0], [0.6, 0.3, 0.1])
