"""Cost as the corpus grows: each stage's wall time per document and the driver's peak memory at
several corpus sizes, run through the real command line (`climb-ray tokens`, then a fixed tiny
`climb-ray search` and `climb-ray export`) on a local Ray.

The corpus: the demo's five package-shipped sources (climb_ray/democorpus.py, about 24k real
documents); past that, documents assembled from the same real text: each one a window of 30-400
consecutive words of one source, starting at a seeded random word (so documents overlap, as
near-duplicates do in crawled corpora). Every size uses the same settings (k-means on a sample of at
most --fit-sample vectors, the BPE trained on at most 20k documents, chunks of 100k documents), so
a flat cost means: time per document from the middle size to the largest grows <= 1.3x, the driver's
peak memory <= 1.5x, and the search's time does not depend on the corpus size.

Driver memory = the peak resident set of the `climb-ray` process itself (its VmHWM, polled); Ray's
workers are not counted (they are the cluster's). Also printed: the largest single process among the
driver and the processes it reaped (os.wait4's ru_maxrss: Ray's processes, started on demand). Stage times are the seconds each stage's _DONE
marker records.

    .venv/bin/python benchmarks/bench_scale.py --sizes 10000,100000,1000000 --encoder-kind static
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
FILE_DOCS = 100_000  # documents per corpus file
STAGES = ["corpus", "embed", "cluster", "tokens", "search", "export"]


def source_words() -> dict[str, np.ndarray]:
    """Each demo source's real documents as one stream of words."""
    from climb_ray.democorpus import SOURCES, source_documents

    rng = np.random.default_rng(0)
    return {s: np.array(" ".join(source_documents(s, rng)).split()) for s in SOURCES}


def write_corpus(folder: Path, n_docs: int, seed: int = 0) -> list[Path]:
    """n_docs documents in JSONL files of FILE_DOCS: the real documents first, then assembled windows."""
    from climb_ray.democorpus import MAX_WORDS, MIN_WORDS, SOURCES, source_documents

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "_COMPLETE"
    paths = sorted(folder.glob("part-*.jsonl"))
    if done.exists():
        return paths
    rng = np.random.default_rng(seed)
    real = [(s, text) for s in SOURCES for text in source_documents(s, np.random.default_rng(0))]
    real = [real[i] for i in rng.permutation(len(real))]
    streams = source_words()
    names = list(streams)
    sizes = np.array([len(streams[s]) for s in names], dtype=float)

    def documents():
        yield from real[:n_docs]
        for _ in range(max(0, n_docs - len(real))):
            s = names[rng.choice(len(names), p=sizes / sizes.sum())]
            length = int(rng.integers(MIN_WORDS, MAX_WORDS + 1))
            start = int(rng.integers(0, len(streams[s]) - length))
            yield s, " ".join(streams[s][start:start + length])

    out, paths = None, []
    for number, (source, text) in enumerate(documents()):
        if number % FILE_DOCS == 0:
            if out:
                out.close()
            paths.append(folder / f"part-{number // FILE_DOCS:04d}.jsonl")
            out = paths[-1].open("w", encoding="utf-8")
        out.write(json.dumps({"id": f"d{number:08d}", "text": text, "source": source}) + "\n")
    out.close()
    done.write_text("done\n")
    return paths


def write_target(path: Path) -> None:
    """100 Wikipedia documents (a held-out-like target; the proxies' loss on them is the score)."""
    from climb_ray.democorpus import source_documents

    docs = source_documents("wikipedia", np.random.default_rng(1))[-100:]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs), encoding="utf-8")


def peak_rss_mib(pid: int) -> float | None:
    """The process's own peak resident set so far (VmHWM), None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


def run_cli(args: list[str]) -> tuple[float, float, float]:
    """(seconds, the driver's own peak resident set in MiB, the largest of it and the processes it reaped
    (Ray's, started on demand) in MiB) of one `climb-ray` command. The driver's peak is its VmHWM, read
    every 0.2 s while it runs (VmHWM only grows: the last read misses at most the last 0.2 s)."""
    import threading

    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "climb-ray"), *args], stdout=log,
                                stderr=subprocess.STDOUT, text=True)
        peak, done = [0.0], threading.Event()

        def poll():
            while not done.is_set():
                now = peak_rss_mib(proc.pid)
                peak[0] = max(peak[0], now or 0.0)
                done.wait(0.2)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise SystemExit(f"climb-ray {' '.join(args[:1])} failed:\n{log.read()[-3000:]}")
    return time.perf_counter() - began, peak[0], usage.ru_maxrss / 1024


def measure(n_docs: int, work: Path, args) -> dict:
    paths = write_corpus(work / f"corpus-{n_docs}", n_docs)
    run = work / f"run-{n_docs}"
    shutil.rmtree(run, ignore_errors=True)  # every stage measured afresh (the corpus is kept)
    settings = [f"corpus.paths=[{','.join(str(p) for p in paths)}]", f"run_dir={run}", f"target.paths=[{work / 'target.jsonl'}]",
                f"embed.model={args.encoder}", f"embed.encoder={args.encoder_kind}", "embed.max_tokens=128", "embed.chunk_docs=100000",
                f"cluster.k_init={args.k_init}", f"cluster.fit_sample={args.fit_sample}", "cluster.n_super_clusters=8",
                "tokens.vocab_size=4096", "tokens.train_docs=20000",
                # the search: fixed and tiny, so only its dependence on the corpus size shows
                "search.schedule=[4]", "proxy.hidden_size=64", "proxy.num_layers=2", "proxy.num_heads=2",
                "proxy.intermediate_size=128", "proxy.context=128", "proxy.batch_size=8", "proxy.steps=20",
                "proxy.warmup_steps=2", "target.max_docs=50", "export.weights=uniform"]
    peaks, largest = {}, {}
    for command in ("tokens", "search", "export"):
        _, peaks[command], largest[command] = run_cli([command, "--config", "demo", *settings])
    seconds = {}
    for stage in STAGES:
        marker = json.loads((run / stage / "_DONE").read_text())
        seconds[stage] = marker.get("seconds", float("nan"))
    return {"documents": n_docs, "seconds": seconds, "driver_peak_mib": peaks, "largest_process_mib": largest,
            "bytes": sum(p.stat().st_size for p in paths)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2", help="embed.model for every size")
    parser.add_argument("--encoder-kind", default="static", choices=["static", "transformer"],
                        help="embed.encoder: static (model2vec, fast on CPU: what makes 1M documents feasible "
                             "on a few cores) or transformer")
    parser.add_argument("--k-init", type=int, default=200)
    parser.add_argument("--fit-sample", type=int, default=100_000)
    parser.add_argument("--work", default=str(ROOT / "data" / "bench_scale"), help="corpora and run folders")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    write_target(work / "target.jsonl")
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        results.append(measure(n, work, args))
        r = results[-1]
        print(f"{n:>9} documents: " + ", ".join(f"{s} {r['seconds'][s]:.1f} s" for s in STAGES)
              + f"; driver peak {max(r['driver_peak_mib'].values()):.0f} MiB", flush=True)
    print(f"\n{platform.node()}: {os.cpu_count()} CPUs, encoder {args.encoder} ({args.encoder_kind}), k_init {args.k_init}, "
          f"fit sample {args.fit_sample}\n")
    print("| stage | " + " | ".join(f"{r['documents']:,} docs: ms/doc" for r in results) + " | growth, last two |")
    print("|---|" + "---|" * (len(results) + 1))
    for stage in STAGES:
        per = [1000 * r["seconds"][stage] / r["documents"] for r in results]
        growth = per[-1] / per[-2] if len(per) > 1 and per[-2] > 0 else float("nan")
        if stage == "search":  # a fixed search: its time, not its time per document, should stay flat
            times = [r["seconds"][stage] for r in results]
            print("| search (s, fixed size) | " + " | ".join(f"{t:.1f} s" for t in times)
                  + f" | {times[-1] / times[-2] if len(times) > 1 else float('nan'):.2f}x |")
            continue
        print(f"| {stage} | " + " | ".join(f"{p:.3f}" for p in per) + f" | {growth:.2f}x |")
    peaks = [max(r["driver_peak_mib"].values()) for r in results]
    print("| driver peak MiB | " + " | ".join(f"{p:.0f}" for p in peaks)
          + f" | {peaks[-1] / peaks[-2] if len(peaks) > 1 else float('nan'):.2f}x |")
    largest = [max(r["largest_process_mib"].values()) for r in results]
    print("| largest process MiB (driver or a Ray process it started) | " + " | ".join(f"{p:.0f}" for p in largest)
          + f" | {largest[-1] / largest[-2] if len(largest) > 1 else float('nan'):.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "encoder": args.encoder}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
