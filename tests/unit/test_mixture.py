import numpy as np
import pytest

from climb_ray.mixture import (MixtureError, MixtureStream, allocate, check_epochs, cluster_starts,
                               parse_weights)

NAMES = ["sc00", "sc01", "sc02"]


def test_allocated_counts_add_up_exactly_and_stay_within_one_of_the_exact_share():
    rng = np.random.default_rng(0)
    for _ in range(500):
        k, n = int(rng.integers(1, 30)), int(rng.integers(0, 5000))
        w = rng.dirichlet(np.full(k, 0.3))
        counts = allocate(w, n)
        assert counts.sum() == n
        assert np.all(np.abs(counts - w * n) < 1.0)


def test_weights_parse_from_every_documented_form():
    assert np.allclose(parse_weights("uniform", NAMES), [1 / 3] * 3)
    assert np.allclose(parse_weights("prior", NAMES, np.array([1.0, 1.0, 2.0])), [0.25, 0.25, 0.5])
    assert np.allclose(parse_weights("2,1,1", NAMES), [0.5, 0.25, 0.25])
    assert np.allclose(parse_weights("sc02=3,sc00=1", NAMES), [0.25, 0, 0.75])
    assert np.allclose(parse_weights('{"sc01": 1}', NAMES), [0, 1, 0])
    assert np.allclose(parse_weights("[0.2, 0.3, 0.5]", NAMES), [0.2, 0.3, 0.5])


@pytest.mark.parametrize("spec, named", [
    ("0.5,0.5", "mixture has 2 weights, clusters are 3"),
    ("0.5,-0.1,0.6", "mixture[1] = -0.1"),
    ("sc09=1", "'sc09'"),
    ("0.5,lots,0.1", "'lots'"),
    ("0,0,0", "all 0"),
    ("{bad json", "not valid JSON"),
])
def test_bad_weights_raise_an_error_naming_the_bad_value(spec, named):
    with pytest.raises(MixtureError, match=named.replace("[", r"\[")):
        parse_weights(spec, NAMES)


def test_a_mixture_over_the_epoch_cap_is_refused_naming_the_cluster():
    tokens = np.array([10_000, 100, 10_000])
    counts = allocate(np.array([0.4, 0.2, 0.4]), 100)  # 20 sequences of 64 tokens from a 100-token cluster
    with pytest.raises(MixtureError, match="cluster sc01, which has 100: 12.8 passes over it, more than search.max_epochs=4"):
        check_epochs(counts, 64, tokens, NAMES, max_epochs=4)
    assert check_epochs(counts, 64, tokens, NAMES, max_epochs=15)[1] == pytest.approx(12.8)


def test_each_pass_uses_every_window_once_before_any_repeats():
    rng = np.random.default_rng(1)
    starts = cluster_starts(1000, 30, 64, rng)  # 15 windows per pass
    first, second = starts[:15], starts[15:]
    assert len(set(first)) == 15 and len(set(second)) == 15
    assert np.all(np.diff(np.sort(first)) == 64) and starts.max() + 64 <= 1000


def arrays():
    return [np.arange(0, 5000, dtype=np.uint16), np.arange(10_000, 13_000, dtype=np.uint16),
            np.arange(20_000, 28_000, dtype=np.uint16)]


def test_the_stream_draws_exact_counts_from_the_right_clusters_and_is_fixed_by_the_seed():
    w = [0.5, 0.2, 0.3]
    a = MixtureStream(arrays(), NAMES, w, n_sequences=97, seq_len=32, max_epochs=15, seed=3)
    b = MixtureStream(arrays(), NAMES, w, n_sequences=97, seq_len=32, max_epochs=15, seed=3)
    c = MixtureStream(arrays(), NAMES, w, n_sequences=97, seq_len=32, max_epochs=15, seed=4)
    batches = [a.batch(i, 16) for i in range(7)]
    sequences = np.concatenate(batches)
    assert sequences.shape == (97, 32)
    origin = sequences[:, 0] // 10_000  # which cluster's value range each sequence comes from
    assert [int((origin == i).sum()) for i in range(3)] == list(allocate(np.array(w), 97)) == [49, 19, 29]
    assert np.all(np.diff(sequences, axis=1) == 1)  # each sequence is one contiguous window
    assert all(np.array_equal(x, b.batch(i, 16)) for i, x in enumerate(batches))
    assert not np.array_equal(batches[0], c.batch(0, 16))


def test_a_cluster_with_weight_zero_is_never_read():
    s = MixtureStream(arrays(), NAMES, [0, 1, 0], n_sequences=50, seq_len=32, max_epochs=15, seed=0)
    values = np.concatenate([s.batch(i, 10) for i in range(5)])
    assert np.all((values >= 10_000) & (values < 13_000))


def test_huge_weights_keep_their_proportions():
    from climb_ray.mixture import parse_weights

    assert parse_weights("1e308,1e308", ["a", "b"]).tolist() == [0.5, 0.5]
    assert parse_weights("a=1e308,b=3e307", ["a", "b"]) == pytest.approx([1 / 1.3, 0.3 / 1.3])


def test_one_epoch_cap_serves_the_search_doremi_and_the_optimizer():
    """weight_caps is the cap everywhere: max_epochs * tokens / budget, or in whole sequences (DoReMi)."""
    from climb_ray.baselines.doremi import epoch_caps
    from climb_ray.mixture import weight_caps
    from climb_ray.optimize import bounds

    tokens = np.array([1000, 50, 10_000])
    assert weight_caps(tokens, 2000, 2.0).tolist() == [1.0, 0.05, 10.0]
    # DoReMi: 2 passes over 50 tokens = 3 whole sequences of 32, out of 10 sequences
    assert weight_caps(tokens, 320, 2.0, seq_len=32).tolist() == pytest.approx([62 / 10, 3 / 10, 625 / 10])
    assert epoch_caps(tokens, max_epochs=2.0, n_sequences=10, seq_len=32) == pytest.approx([6.2, 0.3, 62.5])
    assert weight_caps([10, 100], 320, 15.0, seq_len=32)[0] == 0.0  # shorter than one sequence
    hi = bounds(["a", "b", "c"], tokens=tokens, token_budget=2000, max_epochs=2.0).hi
    assert hi.tolist() == [1.0, 0.05, 1.0]
