import numpy as np

from climb_ray.samplers import PoolSampler, RegMixSampler, fresh_mask, round_to_grid, sharpen

PRIOR = np.array([0.5, 0.3, 0.1, 0.05, 0.05])


def test_regmix_draws_are_on_the_grid_under_the_epoch_cap_and_distinct():
    sampler = RegMixSampler(PRIOR, max_epochs=1.5, min_weight=0.01)
    rows = sampler.sample(200, np.random.default_rng(0))
    assert rows.shape == (200, 5)
    assert np.allclose(rows.sum(axis=1), 1.0)
    assert np.allclose(rows * 100, np.round(rows * 100))  # multiples of min_weight
    assert np.all(rows <= np.minimum(1.5 * PRIOR, 1.0) + 1e-12)
    assert fresh_mask(rows[:1], rows[1:]).all() and len({tuple(r) for r in rows}) == 200


def test_regmix_sampling_is_fixed_by_the_seed_and_excludes_given_rows():
    sampler = RegMixSampler(PRIOR, min_weight=2e-4)
    a, b = sampler.sample(50, np.random.default_rng(3)), sampler.sample(50, np.random.default_rng(3))
    assert np.array_equal(a, b)
    more = sampler.sample(50, np.random.default_rng(3), exclude=a)
    assert fresh_mask(more, a).all()


def test_low_temperature_flattens_the_prior_and_low_strength_makes_sparse_mixtures():
    assert np.allclose(sharpen(PRIOR, 0.0), 0.2) and np.allclose(sharpen(PRIOR, 1.0), PRIOR)
    sparse = RegMixSampler(PRIOR, strength_min=0.1, strength_max=0.1).draw(2000, np.random.default_rng(0))
    dense = RegMixSampler(PRIOR, strength_min=5, strength_max=5).draw(2000, np.random.default_rng(0))
    assert (sparse == 0).mean() > 2 * (dense == 0).mean()


def test_grid_rounding_keeps_rows_summing_to_one():
    w = np.random.default_rng(1).dirichlet(np.ones(21) * 0.3, size=500)
    g = round_to_grid(w, 2e-4)
    assert np.allclose(g.sum(axis=1), 1.0) and np.all(np.abs(g - w) < 2e-3)


def test_pool_sampler_only_gives_pool_rows_it_was_not_told_to_skip():
    rows = np.random.default_rng(0).dirichlet(np.ones(4), size=30)
    pool = PoolSampler(rows)
    first = pool.sample(10, np.random.default_rng(0))
    rest = pool.sample(100, np.random.default_rng(0), exclude=first)
    assert len(rest) == 20 and fresh_mask(rest, first).all()
    assert all(any(np.array_equal(r, p) for p in rows) for r in rest)
