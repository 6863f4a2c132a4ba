import importlib.util

import numpy as np
import pytest

from climb_ray.cluster import ClusterStats, assign, fit_kmeans, kmeans_refine, merge, prune
from climb_ray.cluster_report import build_report, report_png, top_terms
from climb_ray.config import ConfigError


def blobs(n_per=100, centers=((0, 0, 5), (0, 5, 0), (5, 0, 0), (5, 5, 5)), seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(c, 0.3, size=(n_per, 3)) for c in centers]).astype(np.float32)
    return x, np.repeat(np.arange(len(centers)), n_per)


def purity(labels, truth):
    return sum(np.bincount(truth[labels == c]).max() for c in np.unique(labels)) / len(truth)


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_kmeans_backends_recover_separated_blobs(backend):
    x, truth = blobs()
    centroids = fit_kmeans(x, 4, backend=backend, niter=20, seed=1)
    assert centroids.shape == (4, 3) and centroids.dtype == np.float32
    assert purity(assign(x, centroids), truth) == 1.0


def test_assign_is_the_nearest_centroid():
    rng = np.random.default_rng(0)
    x, c = rng.normal(size=(500, 8)).astype(np.float32), rng.normal(size=(7, 8)).astype(np.float32)
    brute = np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(assign(x, c, chunk=64), brute)


def test_more_clusters_than_documents_is_a_config_error():
    with pytest.raises(ConfigError, match="cluster.k_init=50 is more than the 10"):
        fit_kmeans(np.zeros((10, 3), np.float32), 50)


@pytest.mark.skipif(importlib.util.find_spec("cuml") is not None, reason="cuML is installed here")
def test_cuml_backend_without_cuml_says_how_to_get_it():
    with pytest.raises(ConfigError, match="\\[gpu\\]. on the GPU nodes"):
        fit_kmeans(blobs()[0], 4, backend="cuml")


@pytest.mark.skipif(importlib.util.find_spec("cuml") is None, reason="needs cuML and a CUDA GPU")
def test_cuml_backend_recovers_separated_blobs_on_gpu():
    x, truth = blobs()
    assert purity(assign(x, fit_kmeans(x, 4, backend="cuml", seed=1)), truth) == 1.0


def test_prune_drops_low_quality_and_empty_clusters():
    stats = ClusterStats.of(np.array([0, 0, 1, 1, 2]), np.array([5, 5, 5, 5, 5]), np.array([.9, .8, .2, .3, .6]), 4)
    assert list(prune(stats, 0.5)) == [True, False, True, False]


def test_ward_merge_by_distance_and_to_an_exact_count():
    centroids = np.array([[0, 0], [0, .1], [5, 5], [5, 5.1], [9, 0]], np.float32)
    kept = np.array([True, True, True, True, False])
    docs = np.array([1, 1, 10, 10, 3])
    by_distance = merge(centroids, kept, distance=1.0, documents=docs)
    assert list(by_distance) == [1, 1, 0, 0, -1]  # the bigger group gets id 0, pruned stays -1
    assert list(merge(centroids, kept, distance=1.0, n_super=1, documents=docs)) == [0, 0, 0, 0, -1]
    with pytest.raises(ConfigError, match="n_super_clusters=9"):
        merge(centroids, kept, distance=1.0, n_super=9)
    with pytest.raises(ConfigError, match="every cluster was pruned"):
        merge(centroids, np.zeros(5, bool), distance=1.0)
    with pytest.raises(ConfigError, match="cluster.merge_method='single'"):
        merge(centroids, kept, distance=1.0, method="single")


@pytest.mark.parametrize("method", ["ward_kmeans", "ward_documents", "ward_centroid"])
def test_every_merge_method_cuts_by_distance_and_to_an_exact_count(method):
    centroids = np.array([[0, 0], [0, .1], [5, 5], [5, 5.1], [9, 0]], np.float32)
    docs = np.array([1, 1, 10, 10, 3])
    assert list(merge(centroids, docs > 0, distance=1.0, documents=docs, method=method)) == [2, 2, 0, 0, 1]
    assert len(set(merge(centroids, docs > 0, distance=0, n_super=2, documents=docs, method=method))) == 2


def dense_pair_and_diffuse_group(seed):
    """Two dense groups of 1500 documents close together, one diffuse group of 300 far away."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal((0, 0, 0, 0), 0.15, (1500, 4)), rng.normal((1, 0, 0, 0), 0.15, (1500, 4)),
             rng.normal((0, 6, 0, 0), 1.5, (300, 4))]
    return np.concatenate(parts).astype(np.float32), np.repeat([0, 1, 2], [1500, 1500, 300])


@pytest.mark.parametrize("seed", [1, 2])
def test_default_merge_keeps_the_groups_plain_kmeans_finds(seed):
    """k-means finds the three groups; the default merge of 30 clusters must keep them too. The
    paper's Ward on centroids counts the diffuse group's many centroids and merges the dense pair."""
    x, truth = dense_pair_and_diffuse_group(seed)
    centroids = fit_kmeans(x, 30, seed=seed)
    labels = assign(x, centroids)
    docs = np.bincount(labels, minlength=30)
    plain = purity(assign(x, fit_kmeans(x, 3, seed=seed)), truth)
    default = merge(centroids, docs > 0, distance=0, n_super=3, documents=docs)
    assert purity(default[labels], truth) >= min(plain, 0.99)
    paper = merge(centroids, docs > 0, distance=0, n_super=3, documents=docs, method="ward_centroid")
    assert purity(paper[labels], truth) < 0.6  # the failure this test exists to catch


def test_kmeans_refine_moves_a_point_to_the_nearest_weighted_mean_and_keeps_every_group():
    points = np.array([[0.], [1.], [2.], [10.], [11.], [12.]])
    assert list(kmeans_refine(points, np.ones(6), np.array([4, 4, 7, 7, 7, 7]))) == [4, 4, 4, 7, 7, 7]
    line = np.array([[0.], [4.], [10.]])
    assert list(kmeans_refine(line, np.ones(3), np.array([0, 1, 1]))) == [0, 1, 1]
    heavy = np.array([1, 1, 50.])  # the heavy point pulls its group's mean to itself: 4 moves
    assert list(kmeans_refine(line, heavy, np.array([0, 1, 1]))) == [0, 0, 1]
    assert list(kmeans_refine(points[:2], np.ones(2), np.array([0, 1]))) == [0, 1]


def test_report_names_distinctive_terms_examples_and_pruned_clusters():
    stats = ClusterStats.of(np.array([0, 1, 2]), np.array([10, 30, 5]), np.array([1.0, 1.0, 0.1]), 3)
    super_of = np.array([0, 1, -1])
    samples = {0: ["the lord said unto moses", "the lord spake unto israel"],
               1: ["return a sorted list of items", "return the list length"]}
    report = build_report(stats, super_of, 0.5, samples)
    first, second = report["super_clusters"]
    assert "lord" in first["top_terms"] and "list" in second["top_terms"]
    assert first["examples"] == samples[0] and second["token_share"] == 0.75
    assert report["pruned"] == [{"cluster": 2, "documents": 1, "tokens": 5, "reason": "mean quality 0.100 < 0.5"}]
    assert report_png(report)[:8] == b"\x89PNG\r\n\x1a\n"


def test_top_terms_of_empty_groups_are_empty():
    assert top_terms([[], []]) == [[], []]


def test_ward_with_unit_weights_matches_scipy():
    from scipy.cluster.hierarchy import fcluster, linkage

    rng = np.random.default_rng(3)
    points = rng.normal(size=(40, 5))
    from climb_ray.cluster import ward_groups

    for n in (2, 5, 9):
        ours = ward_groups(points, np.ones(40), distance=0, n_groups=n)
        theirs = fcluster(linkage(points, "ward"), n, "maxclust")
        pairs_ours = ours[:, None] == ours[None, :]
        assert np.array_equal(pairs_ours, theirs[:, None] == theirs[None, :])
    cut = 2.5
    ours = ward_groups(points, np.ones(40), distance=cut)
    theirs = fcluster(linkage(points, "ward"), cut, "distance")
    assert np.array_equal(ours[:, None] == ours[None, :], theirs[:, None] == theirs[None, :])


def test_weighted_ward_equals_ward_on_repeated_points():
    from scipy.cluster.hierarchy import fcluster, linkage

    from climb_ray.cluster import ward_groups

    rng = np.random.default_rng(4)
    points, weights = rng.normal(size=(12, 3)), rng.integers(1, 5, size=12)
    ours = ward_groups(points, weights, distance=0, n_groups=4)
    repeated = fcluster(linkage(np.repeat(points, weights, axis=0), "ward"), 4, "maxclust")
    firsts = np.cumsum(weights) - weights
    theirs = repeated[firsts]
    assert np.array_equal(ours[:, None] == ours[None, :], theirs[:, None] == theirs[None, :])


def test_merge_distance_keeps_the_unweighted_scale_when_clusters_are_equal():
    from scipy.cluster.hierarchy import fcluster, linkage

    rng = np.random.default_rng(5)
    centroids = rng.normal(size=(30, 4)).astype(np.float32)
    ours = merge(centroids, np.ones(30, bool), distance=2.0, documents=np.full(30, 500), method="ward_documents")
    theirs = fcluster(linkage(centroids.astype(np.float64), "ward"), 2.0, "distance")
    assert np.array_equal(ours[:, None] == ours[None, :], theirs[:, None] == theirs[None, :])
    default = merge(centroids, np.ones(30, bool), distance=2.0, documents=np.full(30, 500))
    assert len(set(default)) == len(set(theirs))  # k-means after the cut keeps the number of groups
