"""The export's plan (no Ray): tokens per cluster against the weights, epoch caps, the seeded choice."""

import numpy as np
import pytest

from climb_ray.export import ExportError, check_caps, copies, doc_key, largest_budget, plan_cluster


def cluster(n: int, seed: int):
    rng = np.random.default_rng(seed)
    ids = [f"d{seed}-{i}" for i in range(n)]
    return ids, rng.integers(20, 400, size=n)


@pytest.mark.parametrize("weight, budget", [(0.3, 10_000), (0.5, 50_000), (0.9, 200_000), (0.05, 1_000)])
def test_a_clusters_tokens_match_its_weight_within_one_document(weight, budget):
    ids, lengths = cluster(300, 1)
    keys = np.array([doc_key(d, 0) for d in ids])
    plan = plan_cluster("sc00", weight, round(weight * budget), keys, lengths)
    chosen = [copies(plan, k) for k in keys]
    tokens = int(np.dot(chosen, lengths))
    assert tokens == plan.tokens
    assert 0 <= tokens - round(weight * budget) < lengths.max()  # filled until reached: over by less than a document
    assert plan.full_passes == round(weight * budget) // lengths.sum()


def test_targets_are_whole_tokens_adding_up_to_the_budget():
    from climb_ray.export import targets

    wanted = targets(np.array([0.5, 0.3, 0.2]) / 1.0, 1001)
    assert wanted.sum() == 1001 and wanted.dtype.kind == "i" and abs(wanted - [500.5, 300.3, 200.2]).max() < 1


def test_a_cluster_smaller_than_its_share_is_repeated_whole_then_topped_up():
    ids, lengths = cluster(50, 2)
    keys = np.array([doc_key(d, 0) for d in ids])
    plan = plan_cluster("sc01", 1.0, int(2.5 * lengths.sum()), keys, lengths)
    times = np.array([copies(plan, k) for k in keys])
    assert plan.full_passes == 2 and set(times) == {2, 3}
    assert abs(int(np.dot(times, lengths)) - 2.5 * lengths.sum()) < lengths.max()


def test_a_budget_past_the_epoch_cap_is_refused_naming_the_cluster_and_the_shortfall():
    names = ["sc00", "sc01"]
    weights, available = np.array([0.5, 0.5]), np.array([1_000_000.0, 10_000.0])
    check_caps(names, weights, available, 30_000, max_epochs=4)  # sc01: 1.5 passes, fine
    with pytest.raises(ExportError) as err:
        check_caps(names, weights, available, 100_000, max_epochs=4)  # sc01 needs 5 passes
    message = str(err.value)
    assert "cluster sc01 needs 5.00 passes over its 10,000 tokens" in message
    assert "short by 10,000 tokens" in message and "export.token_budget=80,000 fits" in message
    assert largest_budget(weights, available, 4) == 80_000


def test_the_seed_changes_which_documents_fill_the_partial_pass_not_how_many_tokens():
    ids, lengths = cluster(400, 3)
    picks = []
    for seed in (0, 1):
        keys = np.array([doc_key(d, seed) for d in ids])
        plan = plan_cluster("sc00", 0.4, int(0.4 * lengths.sum()), keys, lengths)
        picks.append({d for d, k in zip(ids, keys) if copies(plan, k)})
        assert abs(plan.tokens - 0.4 * lengths.sum()) < lengths.max()
    assert picks[0] != picks[1]


def test_a_zero_weight_cluster_gives_nothing():
    ids, lengths = cluster(10, 4)
    plan = plan_cluster("sc02", 0.0, 0, np.array([doc_key(d, 0) for d in ids]), lengths)
    assert plan.tokens == 0 and all(copies(plan, doc_key(d, 0)) == 0 for d in ids)


def histogram_plan(names, supers, keys, lengths, wanted, bins):
    """plan_from_histogram fed the way the workers feed it: the histogram in parts, then the boundary bins."""
    from climb_ray.export import add_histogram, boundary_bin, key_bins, key_histogram, plan_from_histogram, planned_rows

    tokens, docs = np.zeros((len(names), bins), np.int64), np.zeros((len(names), bins), np.int64)
    for part in np.array_split(np.arange(len(keys)), 7):  # as from several files
        cells, t, d = key_histogram(supers[part], keys[part], lengths[part], bins)
        add_histogram(tokens, cells, t)
        add_histogram(docs, cells, d)
    plans, rows = [], []
    for i, name in enumerate(names):
        edge = np.flatnonzero((supers == i) & (key_bins(keys, bins) == boundary_bin(int(wanted[i]), tokens[i])))
        plans.append(plan_from_histogram(name, 0.5, int(wanted[i]), tokens[i], keys[edge], lengths[edge], edge))
        rows.append(planned_rows(plans[-1], tokens[i], docs[i], keys[edge]))
    return plans, rows


@pytest.mark.parametrize("bins", [1, 16, 65_536])
def test_the_plan_from_key_histograms_equals_plan_cluster_on_random_clusters(bins):
    rng = np.random.default_rng(bins)
    n, names = 3000, ["sc00", "sc01", "sc02", "sc03"]
    supers, lengths = rng.integers(0, 4, n), rng.integers(1, 500, n)
    keys = np.array([doc_key(f"d{i}", 7) for i in range(n)])
    keys[rng.integers(0, n, 300)] = keys[rng.integers(0, n, 300)]  # ties: the stable order decides
    available = np.array([lengths[supers == i].sum() for i in range(4)])
    for wanted in (rng.integers(0, 3, 4) * available + rng.integers(0, available), available * [0, 1, 2, 3],
                   rng.integers(1, 50, 4)):
        plans, rows = histogram_plan(names, supers, keys, lengths, wanted, bins)
        for i, name in enumerate(names):
            member = supers == i
            reference = plan_cluster(name, 0.5, int(wanted[i]), keys[member], lengths[member])
            assert plans[i] == reference
            assert rows[i] == sum(copies(reference, k) for k in keys[member])


def test_documents_above_the_key_cutoff_are_taken_by_no_plan():
    from climb_ray.export import ClusterPlan, key_cutoff

    partial = [ClusterPlan("sc00", 0.5, 10, 100, 0, 0.25, 10), ClusterPlan("sc01", 0.0, 0, 50, 0, -1.0, 0)]
    assert key_cutoff(partial) == 0.25
    assert key_cutoff([*partial, ClusterPlan("sc02", 0.5, 120, 100, 1, 0.1, 20)]) == np.inf
