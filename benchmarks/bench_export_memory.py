"""Peak memory of the export at two sizes: ours (the export stage on Ray Data: rows streamed
through a distributed sort to the shard writer) vs a plain in-memory export (every row in one
pandas DataFrame, sorted by the same keys, written with pyarrow) of the same plan.

A run folder up to its token shards is made once (the demo corpus, --docs-per-source); then each
export writes --small and --large times the corpus's tokens. Memory = the largest sum of the
proportional set size (PSS) of this process and every Ray process, sampled every 0.25 s
(bench_embed_memory.py's measure, so the object store is counted once), minus the same sum just
before the export: the memory the export adds. Bounded means: the ratio large / small stays near
1 for ours while the baseline's grows with the export.

    .venv/bin/python benchmarks/bench_export_memory.py --docs-per-source 300 --small 1 --large 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_embed_memory import peak_while, session_memory  # noqa: E402

SETTINGS = ["embed.max_tokens=64", "cluster.k_init=20", "cluster.n_super_clusters=4", "tokens.vocab_size=1024",
            "tokens.sample=all",  # both sides read every document's tokens from tokens/; the export alone is timed
            "export.weights=uniform", "export.max_epochs=100", "export.shard_mb=16"]


def config(folder: Path, run: Path, *more: str):
    from climb_ray.config_io import load_config

    return load_config(ROOT / "climb_ray" / "configs" / "demo.yaml",
                       [f"corpus.paths=[{folder / 'corpus.jsonl'}]", f"run_dir={run}", *SETTINGS, *more])


def baseline_export(cfg, run: Path, out: Path) -> None:
    """The same plan, every row held in memory at once, then sorted and written in one go."""
    import numpy as np
    import pandas as pd

    from climb_ray.artifacts import RunDir
    from climb_ray.export import copies, doc_key, plan_cluster, targets
    import pyarrow.parquet as pq

    from climb_ray.stages.export import chosen_weights, docs_files

    rd = RunDir(str(run))
    docs = pq.read_table(docs_files(rd), columns=["doc_id", "super_cluster", "n_tokens"])
    ids, supers, lengths = docs.column("doc_id").to_pylist(), docs.column("super_cluster").to_numpy(), \
        docs.column("n_tokens").to_numpy()
    names = rd.read_json("tokens/meta.json")["clusters"]
    available = np.array([lengths[supers == i].sum() for i in range(len(names))], dtype=float)
    weights = chosen_weights(cfg, rd, names, available / available.sum())
    wanted = targets(weights, cfg.export.token_budget)
    keys = np.array([doc_key(d, cfg.export.seed) for d in ids])
    times = np.zeros(len(ids), dtype=int)
    for i, name in enumerate(names):
        members = np.flatnonzero(supers == i)
        plan = plan_cluster(name, float(weights[i]), int(wanted[i]), keys[members], lengths[members])
        times[members] = [copies(plan, k) for k in keys[members]]
    texts = {json.loads(line)["id"]: json.loads(line)["text"] for line in open(cfg.corpus.paths[0])}
    rows = [(doc_key(d, cfg.export.seed, c), texts[d], names[s], d)
            for d, s, t in zip(ids, supers, times) for c in range(t)]
    frame = pd.DataFrame(rows, columns=["key", "text", "cluster", "doc_id"]).sort_values("key")
    out.mkdir(parents=True, exist_ok=True)
    frame.drop(columns="key").to_parquet(out / "all.parquet", index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs-per-source", type=int, default=300)
    parser.add_argument("--small", type=float, default=1.0, help="export size, in times the corpus's tokens")
    parser.add_argument("--large", type=float, default=8.0)
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    import ray

    from climb_ray.democorpus import build_demo_corpus
    from climb_ray.stages.pipeline import run_pipeline

    folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
    build_demo_corpus(folder / "corpus.jsonl", docs_per_source=args.docs_per_source, seed=0)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    base = folder / "base"
    run_pipeline(config(folder, base), until="tokens")
    total = sum(json.loads((base / "tokens" / "meta.json").read_text())["tokens"].values())
    results = {}
    for label, times in (("small", args.small), ("large", args.large)):
        budget = int(times * total)
        run = folder / f"ours-{label}"
        shutil.copytree(base, run)
        cfg = config(folder, run, f"export.token_budget={budget}")
        idle = sum(session_memory().values())
        seconds, peak, _ = peak_while(lambda: run_pipeline(cfg, until="export", skip=("search",)))
        peak -= idle
        idle = sum(session_memory().values())
        b_seconds, b_peak, _ = peak_while(lambda: baseline_export(cfg, run, folder / f"baseline-{label}"))
        b_peak -= idle
        manifest = json.loads((run / "export" / "manifest.json").read_text())
        results[label] = {"budget": budget, "rows": manifest["rows"], "ours_peak_mib": peak / 2**20,
                          "ours_s": seconds, "baseline_peak_mib": b_peak / 2**20, "baseline_s": b_seconds}
        print(f"{label:>5}: {budget:,} tokens, {manifest['rows']:,} rows | ours +{peak / 2**20:,.0f} MiB at peak "
              f"in {seconds:.1f} s | in-memory baseline +{b_peak / 2**20:,.0f} MiB in {b_seconds:.1f} s", flush=True)
    ours = results["large"]["ours_peak_mib"] / results["small"]["ours_peak_mib"]
    baseline = results["large"]["baseline_peak_mib"] / results["small"]["baseline_peak_mib"]
    print(f"memory added at peak, large / small ({args.large / args.small:g}x the tokens): ours {ours:.2f}, "
          f"baseline {baseline:.2f}; machine: {platform.machine()}, {os.cpu_count()} CPUs")
    results.update(ours_ratio=ours, baseline_ratio=baseline, corpus_tokens=total, docs_per_source=args.docs_per_source)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
