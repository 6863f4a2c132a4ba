import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def bench():
    spec = importlib.util.spec_from_file_location("bench_merge", ROOT / "benchmarks" / "bench_merge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_average_members_with_single_documents_is_scipys_average_cosine_linkage():
    from scipy.cluster.hierarchy import fcluster, linkage

    rng = np.random.default_rng(0)
    points = rng.normal(size=(25, 6))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    ours = bench().average_members(points, np.ones(25), 4)
    theirs = fcluster(linkage(points, "average", metric="cosine"), 4, "maxclust")
    assert np.array_equal(ours[:, None] == ours[None, :], theirs[:, None] == theirs[None, :])


def test_evaluate_scores_every_merge_choice_beside_plain_kmeans():
    rng = np.random.default_rng(1)
    centers = np.eye(8, dtype=np.float32)[:4] * 4
    x = np.concatenate([rng.normal(c, 0.3, (150, 8)) for c in centers]).astype(np.float32)
    truth = np.repeat(np.arange(4), 150)
    module = bench()
    rows = module.evaluate(x, truth, k_init=20, n_super=4, distance=1.5, seed=0, niter=20)
    assert [(r["mode"], r["method"]) for r in rows] == [
        ("count", "ward_kmeans"), ("count", "ward_documents"), ("count", "ward_centroid"),
        ("distance 1.5", "ward_kmeans"), ("distance 1.5", "ward_documents"), ("distance 1.5", "ward_centroid"),
        ("count", "average_members")]
    assert rows[0]["groups"] == 4 and rows[0]["purity"] == 1.0 and rows[0]["ami"] > 0.99
    assert module.purity(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])) == 0.75
