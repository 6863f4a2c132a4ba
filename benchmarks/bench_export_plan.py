"""The driver's memory for the export's plan as the corpus grows: ours (climb_ray.stages.export.plan_export:
Ray Data tasks add up key histograms, then read the boundary bins again) vs the per-document plan it
replaced (every document's doc_id, cluster, tokens and key read into the driver, plan_cluster per
cluster, then the {doc_id: (cluster, copies)} map of the chosen documents that was shipped to every task).

Both make the same plans (checked here too). Input: a synthetic tokens/docs/ of --sizes documents in
files of 100k rows (doc_id, super_cluster of 20, n_tokens), a budget of half the tokens, uniform
weights. Memory = the peak resident set of a fresh process doing only the plan (os.wait4's ru_maxrss),
minus that of the same process stopping just before it (its imports, and for ours the Ray client);
seconds likewise (for ours: 2 local CPUs, Ray's start not counted).
Flat means: ours grows < 1.5x from the smallest to the largest size while the baseline grows with it.

    .venv/bin/python benchmarks/bench_export_plan.py --sizes 200000,2000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLUSTERS, FILE_ROWS = 20, 100_000


def write_docs(folder: Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (folder / "_COMPLETE").exists():
        return
    docs = folder / "tokens" / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for start in range(0, n, FILE_ROWS):
        rows = min(FILE_ROWS, n - start)
        pq.write_table(pa.table({"doc_id": [f"doc-{i:010d}" for i in range(start, start + rows)],
                                 "super_cluster": rng.integers(0, CLUSTERS, rows).astype(np.int32),
                                 "n_tokens": rng.integers(20, 2000, rows)}), docs / f"chunk-{start // FILE_ROWS:05d}.parquet")
    (folder / "_COMPLETE").write_text("done\n")


def plan(folder: Path, how: str, stop: bool) -> None:
    """One measured run (in its own process): the plans of `how` as JSON on stdout."""
    import pyarrow.parquet as pq

    from climb_ray.artifacts import RunDir
    from climb_ray.export import copies, doc_key, plan_cluster, targets
    from climb_ray.stages.export import docs_files, plan_export

    run, names, seed = RunDir(str(folder)), [f"sc{i:02d}" for i in range(CLUSTERS)], 0
    weights = np.full(CLUSTERS, 1 / CLUSTERS)
    if how == "ours":
        import ray

        from climb_ray.adapters.ray_export import key_histograms

        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        if stop:
            return
        histograms = key_histograms(docs_files(run), seed, CLUSTERS)
        plans, _ = plan_export(run, names, histograms, weights, int(histograms[0].sum()) // 2, seed)
    else:
        if stop:
            return
        docs = pq.read_table(docs_files(run))
        ids, supers, lengths = (docs.column("doc_id").to_pylist(), docs.column("super_cluster").to_numpy(),
                                docs.column("n_tokens").to_numpy())
        keys = np.array([doc_key(d, seed) for d in ids])
        wanted = targets(weights, int(lengths.sum()) // 2)
        members = [np.flatnonzero(supers == i) for i in range(CLUSTERS)]
        plans = [plan_cluster(n, float(weights[i]), int(wanted[i]), keys[members[i]], lengths[members[i]])
                 for i, n in enumerate(names)]
        chosen = {ids[m]: (p.name, t) for p, rows in zip(plans, members) for m in rows if (t := copies(p, keys[m])) > 0}
        assert chosen
    print(json.dumps([[p.full_passes, p.threshold, p.extra_tokens] for p in plans]))


def measure(folder: Path, how: str, stop: bool) -> tuple[float, float, str]:
    """(seconds, peak resident MiB, stdout) of a fresh process planning with `how`."""
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--one", how, "--folder", str(folder)] + (["--stop"] if stop else []),
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{how} failed")
    return time.perf_counter() - began, usage.ru_maxrss / 1024, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200000,2000000")
    parser.add_argument("--work", default=str(ROOT / "data" / "bench_export_plan"))
    parser.add_argument("--one", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--stop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        plan(Path(args.folder), args.one, args.stop)
        return 0
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        folder = Path(args.work) / f"docs-{n}"
        write_docs(folder, n)
        result = {}
        for how in ("baseline", "ours"):
            start, base, _ = measure(folder, how, stop=True)
            seconds, peak, out = measure(folder, how, stop=False)
            result[how] = (seconds - start, peak - base, out)
        assert result["ours"][2] == result["baseline"][2], "the plans differ"
        rows.append((n, result))
        print(f"{n:>10,} documents: baseline {result['baseline'][1]:.0f} MiB ({result['baseline'][0]:.1f} s), "
              f"ours {result['ours'][1]:.0f} MiB ({result['ours'][0]:.1f} s); same plans", flush=True)
    print("\n| documents | baseline: driver MiB | ours: driver MiB | baseline / ours |\n|---|---|---|---|")
    for n, r in rows:
        print(f"| {n:,} | {r['baseline'][1]:.0f} | {r['ours'][1]:.0f} | {r['baseline'][1] / max(r['ours'][1], 1):.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
