"""The cluster report: per super-cluster its size, tokens, distinctive terms, examples and place on a 2-D
map of the clusters, and its PNGs (token shares, the map)."""

from __future__ import annotations

import io

import numpy as np

from climb_ray.cluster import ClusterStats

N_TERMS, N_EXAMPLES, SNIPPET_CHARS = 8, 3, 240


def top_terms(texts_by_group: list[list[str]], n: int = N_TERMS) -> list[list[str]]:
    """The n most distinctive words of each group: TF-IDF with each group's text as one document."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = [" ".join(texts) for texts in texts_by_group]
    if not any(d.strip() for d in docs):
        return [[] for _ in docs]
    vectorizer = TfidfVectorizer(stop_words="english", sublinear_tf=True, lowercase=True,
                                 token_pattern=r"(?u)\b[^\W\d_]{3,}\b")
    try:
        matrix = vectorizer.fit_transform(docs).toarray()
    except ValueError:  # nothing but stop words
        return [[] for _ in docs]
    vocab = np.array(vectorizer.get_feature_names_out())
    top = []
    for row in matrix:
        best = np.argsort(-row, kind="stable")[:n]
        top.append([str(vocab[i]) for i in best if row[i] > 0])
    return top


def cluster_map(centroids: np.ndarray, super_of: np.ndarray, tokens: np.ndarray) -> dict:
    """The kept k-means clusters on a plane: the first two principal components of their centroids,
    scaled into [-1, 1] (each axis's sign fixed so that its largest loading is positive); each
    super-cluster sits at the token-weighted mean of its members."""
    kept = np.flatnonzero(super_of >= 0)
    points = np.asarray(centroids, dtype=np.float64)[kept]
    xy = np.zeros((len(kept), 2))
    if len(kept) >= 2:
        centered = points - points.mean(axis=0)
        _, _, vt = np.linalg.svd(centered, full_matrices=False)
        axes = vt[:2] * np.sign(vt[:2][np.arange(min(2, len(vt))), np.abs(vt[:2]).argmax(axis=1)])[:, None]
        xy[:, : len(axes)] = centered @ axes.T
        xy /= np.abs(xy).max() or 1.0
    weight = np.asarray(tokens, dtype=np.float64)[kept] + 1e-9
    supers = []
    for s in range(int(super_of.max()) + 1 if len(kept) else 0):
        members = super_of[kept] == s
        supers.append([round(float(v), 4) for v in np.average(xy[members], axis=0, weights=weight[members])])
    return {"method": "PCA of the kept k-means centroids",
            "clusters": [[int(c), round(float(x), 4), round(float(y), 4), int(super_of[c]), int(tokens[c])]
                         for c, (x, y) in zip(kept, xy)],
            "super_clusters": supers}


def build_report(stats: ClusterStats, super_of: np.ndarray, threshold: float,
                 samples: dict[int, list[str]], labels: list | None = None, quality: bool = True,
                 centroids: np.ndarray | None = None) -> dict:
    """clusters.json content. `samples` holds some document texts of each super-cluster; `labels`, the
    given label of each super-cluster of a pre-clustered corpus (it names the cluster); quality=False
    when there was no text to score (a token-ID corpus: mean_quality is null); `centroids` (k-means)
    place the clusters on the map (`map`, and each super-cluster's `map_xy`)."""
    n_super = int(super_of.max()) + 1 if (super_of >= 0).any() else 0
    terms = top_terms([samples.get(s, []) for s in range(n_super)])
    total_tokens = max(int(stats.tokens[super_of >= 0].sum()), 1)
    supers = []
    for s in range(n_super):
        members = np.flatnonzero(super_of == s)
        tokens = int(stats.tokens[members].sum())
        given = {"label": labels[s]} if labels is not None else {}
        suffix = str(labels[s]) if labels is not None else "-".join(terms[s][:2])
        supers.append({
            "id": s, **given,
            "name": f"sc{s:02d}" + (f"-{suffix}" if suffix else ""),
            "documents": int(stats.documents[members].sum()),
            "tokens": tokens,
            "token_share": round(tokens / total_tokens, 6),
            "mean_quality": (round(float(stats.quality_sum[members].sum() / max(stats.documents[members].sum(), 1)), 4)
                             if quality else None),
            "clusters": [int(c) for c in members],
            "top_terms": terms[s],
            "examples": [_snippet(t) for t in samples.get(s, [])[:N_EXAMPLES]],
        })
    report = {"super_clusters": supers, "pruned": _pruned(stats, super_of, threshold),
              "k_init": int(len(super_of)), "prune_threshold": threshold}
    if centroids is not None and n_super:
        report["map"] = cluster_map(centroids, super_of, stats.tokens)
        for s, xy in zip(supers, report["map"]["super_clusters"]):
            s["map_xy"] = xy
    return report


def _pruned(stats: ClusterStats, super_of: np.ndarray, threshold: float) -> list[dict]:
    out = []
    for c in np.flatnonzero(super_of < 0):
        empty = stats.documents[c] == 0
        reason = "no documents" if empty else f"mean quality {stats.mean_quality[c]:.3f} < {threshold}"
        out.append({"cluster": int(c), "documents": int(stats.documents[c]),
                    "tokens": int(stats.tokens[c]), "reason": reason})
    return out


def _snippet(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3].rsplit(" ", 1)[0] + "..."


def report_png(report: dict) -> bytes:
    """A bar chart of the super-clusters' token shares, labelled with their top terms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    supers = report["super_clusters"]
    labels = [f"{s['id']}: {', '.join(s['top_terms'][:4])}" for s in supers]
    shares = [100 * s["token_share"] for s in supers]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(len(supers), 1)))
    ax.barh(range(len(supers)), shares, color="#4c72b0")
    ax.set_yticks(range(len(supers)), labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("share of tokens (%)")
    pruned = len(report["pruned"])
    ax.set_title(f"{len(supers)} super-clusters from k={report['k_init']} ({pruned} clusters pruned)")
    return _png(fig)


def map_png(report: dict) -> bytes:
    """The cluster map: each kept k-means cluster a dot sized by its tokens, coloured by its
    super-cluster, each super-cluster labelled with its top terms at its place."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = np.array(report["map"]["clusters"], dtype=np.float64).reshape(-1, 5)
    colors = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(8, 7))
    sizes = 8 + 400 * points[:, 4] / max(points[:, 4].max(), 1)
    ax.scatter(points[:, 1], points[:, 2], s=sizes, c=[colors(int(s) % 20) for s in points[:, 3]], alpha=0.6,
               edgecolors="white", linewidths=0.5)
    for s in report["super_clusters"]:
        x, y = s["map_xy"]
        ax.annotate(f"sc{s['id']:02d}: {', '.join(s['top_terms'][:3])}", (x, y), fontsize=8, ha="center",
                    weight="bold", bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8, "lw": 0})
    ax.set(xticks=[], yticks=[], title=f"{len(points)} k-means clusters in {len(report['super_clusters'])} "
                                       f"super-clusters ({report['map']['method']}; dot area ~ tokens)")
    return _png(fig)


def leaf_names(tree: np.ndarray, super_of_kept: np.ndarray) -> dict[int, str]:
    """Each node of a scipy linkage `tree` over the kept clusters named by the super-clusters below it:
    "sc03" when all its clusters went to sc03, else their ids joined by "+" (at most 3, then "+")."""
    n = len(super_of_kept)
    below = {i: {int(super_of_kept[i])} for i in range(n)}
    for j, (a, b, _, _) in enumerate(tree):
        below[n + j] = below[int(a)] | below[int(b)]
    out = {}
    for node, supers in below.items():
        ids = sorted(supers)
        out[node] = f"sc{ids[0]:02d}" if len(ids) == 1 else "+".join(f"{s:02d}" for s in ids[:3]) + (
            "+" if len(ids) > 3 else "")
    return out


def dendrogram_png(centroids: np.ndarray, super_of: np.ndarray, distance: float, *, cut: bool = True) -> bytes:
    """Ward's tree over the kept k-means centroids (plain Ward, the paper's; its top 60 branches), each leaf
    named by the super-cluster(s) its clusters went to, so a reader sees how the merge split the tree;
    cut=True (the merge cut plain Ward at `distance`) also draws that cut."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import dendrogram, linkage

    kept = np.flatnonzero(super_of >= 0)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    if len(kept) < 2:
        ax.text(0.5, 0.5, "one kept cluster: no tree", ha="center", transform=ax.transAxes)
        return _png(fig)
    tree = linkage(np.asarray(centroids, dtype=np.float64)[kept], method="ward")
    names = leaf_names(tree, super_of[kept])
    p = min(60, len(kept))
    dendrogram(tree, ax=ax, truncate_mode="lastp", p=p, color_threshold=distance if cut else 0,
               leaf_rotation=90, leaf_font_size=7, leaf_label_func=names.__getitem__)
    if cut:
        ax.axhline(distance, color="#b3261e", lw=1, ls="--")
    what = f"dashed: the cut at {distance:g}; " if cut else ""
    ax.set(ylabel="Ward distance", title=f"Ward's tree of the {len(kept)} kept clusters (top {p} branches); "
                                         f"{what}leaves: their super-clusters")
    return _png(fig)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
