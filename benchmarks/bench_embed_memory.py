"""Peak memory of the embedding stage at two corpus sizes (the baseline is the smaller run).

The corpus is the demo corpus repeated under new ids up to --small and --large documents.
Memory = the largest sum, over samples every 0.25 s, of the proportional set size (PSS: shared
pages split between the processes sharing them, so the object store is counted once) of this
process and every Ray process of the session. Flat means: ratio large / small close to 1.
The largest processes at the peak are listed too.

    .venv/bin/python benchmarks/bench_embed_memory.py --small 2000 --large 20000 --max-tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_corpus(source: str, n: int, out: Path) -> None:
    texts = [json.loads(line)["text"] for line in open(source, encoding="utf-8")]
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"doc-{i}", "text": texts[i % len(texts)]}) + "\n")


def session_memory() -> dict[str, int]:
    """PSS bytes of this process and of every process whose command line mentions ray (Linux /proc)."""
    out: dict[str, int] = {}
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if int(pid) != os.getpid() and "ray" not in cmd:
                continue
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            pss_kb = int(rollup.split("\nPss:")[1].split()[0])
            out[f"{pid} {cmd[:60]}"] = pss_kb * 1024
        except (OSError, ValueError, IndexError):
            continue
    return out


def peak_while(fn) -> tuple[float, int, dict]:
    peak, at_peak, done = [0], [{}], threading.Event()

    def watch():
        while not done.is_set():
            sample = session_memory()
            if sum(sample.values()) > peak[0]:
                peak[0], at_peak[0] = sum(sample.values()), sample
            time.sleep(0.25)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    return seconds, peak[0], at_peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/demo_corpus.jsonl")
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    import ray

    from climb_ray.adapters.ray_data import embed_files
    from climb_ray.config import CorpusConfig, EmbedConfig

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    embed = EmbedConfig(max_tokens=args.max_tokens, batch_size=64, num_actors=1, threads=2)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.small, args.large):
            corpus = Path(tmp) / f"c{n}.jsonl"
            write_corpus(args.corpus, n, corpus)
            out = f"{tmp}/out{n}"
            results[n] = peak_while(lambda: embed_files([(str(corpus), corpus.name)], CorpusConfig(), embed,
                                                        "heuristic", out))
    ray.shutdown()
    for n, (seconds, peak, parts) in results.items():
        print(f"{n:7d} documents  {seconds:7.1f} s  peak memory (PSS) {peak / 2**20:8.0f} MiB; largest:")
        for name, size in sorted(parts.items(), key=lambda kv: -kv[1])[:4]:
            print(f"           {size / 2**20:7.0f} MiB  {name}")
    ratio = results[args.large][1] / results[args.small][1]
    print(f"ratio of peaks (large / small, {args.large // args.small}x the documents): {ratio:.2f}")


if __name__ == "__main__":
    main()
