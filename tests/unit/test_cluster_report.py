"""The cluster map: k-means clusters on a plane (PCA of centroids), super-clusters at their members'
token-weighted place, and its PNG."""

import numpy as np

from climb_ray.cluster import ClusterStats
from climb_ray.cluster_report import build_report, cluster_map, map_png


def _two_groups(rng):
    """6 centroids in 16 dimensions: 3 around +e0, 3 around -e0; cluster 6 pruned."""
    centroids = rng.normal(0, 0.05, (7, 16))
    centroids[:3, 0] += 1
    centroids[3:6, 0] -= 1
    super_of = np.array([0, 0, 0, 1, 1, 1, -1])
    return centroids, super_of


def test_the_map_keeps_the_groups_apart_and_places_each_super_cluster_among_its_members():
    centroids, super_of = _two_groups(np.random.default_rng(0))
    tokens = np.array([100, 200, 300, 50, 50, 900, 10])
    m = cluster_map(centroids, super_of, tokens)
    xy = {c: (x, y) for c, x, y, _, _ in m["clusters"]}
    assert set(xy) == {0, 1, 2, 3, 4, 5}  # the pruned cluster is not on the map
    first = [xy[c][0] for c in range(3)]
    second = [xy[c][0] for c in range(3, 6)]
    assert max(first) < min(second) or max(second) < min(first)  # the main axis separates the two groups
    assert max(abs(v) for p in xy.values() for v in p) <= 1.0
    expected = np.average([xy[c] for c in (3, 4, 5)], axis=0, weights=[50, 50, 900])
    assert np.allclose(m["super_clusters"][1], expected, atol=1e-3)


def test_the_map_is_the_same_whatever_the_sign_the_svd_picks():
    centroids, super_of = _two_groups(np.random.default_rng(1))
    a = cluster_map(centroids, super_of, np.ones(7))
    b = cluster_map(-centroids, super_of, np.ones(7))  # mirrored input: the same axes, so a mirrored picture
    assert np.allclose(np.array(a["clusters"])[:, 1:3], -np.array(b["clusters"])[:, 1:3], atol=1e-4)


def test_the_report_carries_the_map_and_draws_it():
    centroids, super_of = _two_groups(np.random.default_rng(2))
    stats = ClusterStats(np.full(7, 10), np.arange(7) * 100 + 5, np.full(7, 9.0))
    samples = {0: ["alpha beta gamma delta"] * 3, 1: ["python code function return"] * 3}
    report = build_report(stats, super_of, 0.5, samples, centroids=centroids)
    assert [len(s["map_xy"]) for s in report["super_clusters"]] == [2, 2]
    assert len(report["map"]["clusters"]) == 6
    assert map_png(report)[:4] == b"\x89PNG"
    assert "map" not in build_report(stats, super_of, 0.5, samples)  # no centroids (a labelled corpus): no map


def test_the_dendrogram_is_drawn_also_for_a_single_kept_cluster(tmp_path):
    import matplotlib.image

    from climb_ray.cluster_report import dendrogram_png

    centroids, super_of = _two_groups(np.random.default_rng(3))
    path = tmp_path / "tree.png"
    path.write_bytes(dendrogram_png(centroids, super_of, 1.5))
    assert matplotlib.image.imread(path).shape[:2] == (int(4.5 * 110), 10 * 110)
    assert dendrogram_png(centroids, np.array([0, -1, -1, -1, -1, -1, -1]), 1.5)[:4] == b"\x89PNG"  # one leaf


def test_the_trees_nodes_are_named_by_the_super_clusters_below_them():
    from scipy.cluster.hierarchy import linkage

    from climb_ray.cluster_report import leaf_names

    centroids, super_of = _two_groups(np.random.default_rng(4))
    kept = super_of >= 0
    tree = linkage(centroids[kept], method="ward")
    names = leaf_names(tree, super_of[kept])
    assert [names[i] for i in range(6)] == ["sc00"] * 3 + ["sc01"] * 3
    assert names[len(tree) + 5] == "00+01"  # the root holds both
    assert sorted(names[6 + j] for j in range(4)) == ["sc00", "sc00", "sc01", "sc01"]  # each group whole first
