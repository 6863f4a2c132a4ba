"""The cluster stage: k-means on a sample, statistics, pruning and merging into super-clusters, the
assignment of every document and the report; or, for a pre-clustered corpus, its labels as super-clusters."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from climb_ray import log
from climb_ray.artifacts import (ASSIGNMENTS, CENTROIDS, CHUNK, CLUSTERS, CLUSTERS_MAP_PNG, CLUSTERS_PNG, CORPUS_LABELS,
                                 CORPUS_STATS, DENDROGRAM_PNG, EMBED, RunDir, Summary)
from climb_ray.config import Config
from climb_ray.stages.corpus import plan_chunks, corpus_files
from climb_ray.stages.embed import chunk_folders


def cluster_stage(cfg: Config, run: RunDir) -> ClusterResult:
    """k-means on a sample, statistics and assignment of every document, pruning, merging, report."""
    if cfg.corpus.label_field:
        return label_cluster_stage(cfg, run)
    with log.Progress(log.get(__name__), "cluster") as progress:
        return _kmeans_clusters(cfg, run, progress)


def _kmeans_clusters(cfg: Config, run: RunDir, progress: log.Progress) -> ClusterResult:
    from climb_ray.adapters import ray_cluster as rc
    from climb_ray.cluster import merge, prune
    from climb_ray.cluster_report import build_report, dendrogram_png, map_png, report_png

    c, embed_url = cfg.cluster, run.url(EMBED)
    n_docs = run.read_json(CORPUS_STATS)["documents"]
    progress.note(f"sampling {min(c.fit_sample, n_docs):,} of {n_docs:,} vectors")
    sample = rc.sample_embeddings(embed_url, n_docs, c.fit_sample, cfg.seed)
    progress.note(f"k-means fit, k={c.k_init} on {len(sample):,} vectors, {c.niter} iterations, {c.backend}")
    centroids = rc.fit_centroids(sample, c.k_init, backend=c.backend, niter=c.niter, seed=cfg.seed)
    buffer = io.BytesIO()
    np.save(buffer, centroids)
    run.write_bytes(CENTROIDS, buffer.getvalue())
    progress.note(f"statistics of {n_docs:,} documents")
    stats = rc.cluster_statistics(embed_url, centroids)
    kept = prune(stats, c.prune_threshold)
    progress.note(f"merging {int(kept.sum())} kept clusters")
    super_of = merge(centroids, kept, distance=c.merge_distance, n_super=c.n_super_clusters,
                     documents=stats.documents, method=c.merge_method)
    run.clear_stage(ASSIGNMENTS)
    chunks = chunk_folders(run)
    for index, chunk in enumerate(chunks):  # assignments keep the embed chunks: the tokens stage resumes by chunk
        progress.note(f"assigning documents, chunk {index + 1} of {len(chunks)}")
        rc.write_assignments(run.url(EMBED, chunk), centroids, super_of, run.url(ASSIGNMENTS, chunk))
    progress.note("report")
    n_super = int(super_of.max()) + 1
    samples = rc.sample_texts(run.url(ASSIGNMENTS), n_super, c.report_docs, n_docs, cfg.seed)
    report = build_report(stats, super_of, c.prune_threshold, samples, centroids=centroids)
    run.write_json(CLUSTERS, report)
    run.write_bytes(CLUSTERS_PNG, report_png(report))
    run.write_bytes(CLUSTERS_MAP_PNG, map_png(report))
    plain_cut = c.merge_method == "ward_centroid" and not c.n_super_clusters  # else the tree shows no cut
    run.write_bytes(DENDROGRAM_PNG, dendrogram_png(centroids, super_of, c.merge_distance, cut=plain_cut))
    pruned_docs = int(stats.documents[super_of < 0].sum())
    return ClusterResult(k_init=c.k_init, fit_documents=int(len(sample)), clusters_pruned=int((super_of < 0).sum()),
                         documents_pruned=pruned_docs, super_clusters=n_super,
                         names=[s["name"] for s in report["super_clusters"]])


MAX_LABELS = 1000  # a pre-clustered corpus with more labels than this is more likely labelled by document


def label_cluster_stage(cfg: Config, run: RunDir) -> ClusterResult:
    """A pre-clustered corpus (corpus.label_field): each label, in sorted order, is a super-cluster;
    the assignments and the report are written as the k-means path writes them."""
    from climb_ray.adapters import ray_cluster as rc
    from climb_ray.adapters import ray_labels as rl
    from climb_ray.cluster_report import build_report, report_png
    from climb_ray.corpus import CorpusError

    labels = [label for label, _ in run.read_json(CORPUS_LABELS)["labels"]]
    if len(labels) > MAX_LABELS:
        raise CorpusError(f"corpus.label_field={cfg.corpus.label_field!r} has {len(labels)} different labels "
                          f"(e.g. {labels[:3]!r}), more than {MAX_LABELS} super-clusters: is it a per-document field?")
    index_of = {str(label): i for i, label in enumerate(labels)}
    tokenizer = None
    if cfg.corpus.token_ids_field:  # the report shows token-ID documents decoded (their first ids only)
        from climb_ray.tokens import pretrained_tokenizer

        tokenizer = pretrained_tokenizer(cfg.tokens.tokenizer)[0].to_str()
    run.clear_stage(ASSIGNMENTS)
    for index, chunk in enumerate(plan_chunks(corpus_files(run), cfg.embed.chunk_docs)):
        rl.write_label_assignments([(f["file"], f["name"]) for f in chunk], cfg.corpus, index_of,
                                   cfg.cluster.quality_scorer, run.url(ASSIGNMENTS, CHUNK.format(index)),
                                   tokenizer)
    k, n_docs = len(labels), run.read_json(CORPUS_STATS)["documents"]
    stats = rl.label_statistics(run.url(ASSIGNMENTS), k)
    samples = rc.sample_texts(run.url(ASSIGNMENTS), k, cfg.cluster.report_docs, n_docs, cfg.seed)
    report = build_report(stats, np.arange(k), 0.0, samples, labels=labels, quality=not cfg.corpus.token_ids_field)
    run.write_json(CLUSTERS, report)
    run.write_bytes(CLUSTERS_PNG, report_png(report))
    return ClusterResult(super_clusters=k, names=[s["name"] for s in report["super_clusters"]],
                         label_field=cfg.corpus.label_field)


@dataclass
class ClusterResult(Summary):
    k_init: int = 0  # 0: a pre-clustered corpus
    fit_documents: int = 0  # documents k-means was fitted on
    clusters_pruned: int = 0
    documents_pruned: int = 0
    super_clusters: int = 0
    names: list = field(default_factory=list)  # the super-clusters' names
    label_field: str = ""  # set: a pre-clustered corpus, one super-cluster per label

    def describe(self) -> str:
        names = ", ".join(self.names)
        if self.label_field:
            return (f"{self.super_clusters} super-clusters, one per label of corpus.label_field="
                    f"{self.label_field!r} -> {CLUSTERS}, clusters.png: {names}")
        return (f"{self.super_clusters} super-clusters from k={self.k_init} "
                f"({self.clusters_pruned} clusters, {self.documents_pruned} documents pruned) -> "
                f"{CLUSTERS}, clusters.png, map.png, dendrogram.png: {names}")
