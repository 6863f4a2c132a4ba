"""The embed stage over many chunks: one pass through one encoder pool (ours) vs a pass and a pool per chunk
(as before), side by side on the same files, Ray started once before the clock.

A chunk is `embed.chunk_docs` documents of whole files, the unit a killed run redoes. Before, each chunk
was its own Ray Data pipeline: its encoder actors started (model loaded) and drained with it, so every
chunk paid the pool's start-up and its tail. Ours runs every unfinished chunk through one pool and marks
each chunk finished as soon as its documents are written. The corpus: bench_scale.py's (the demo's real
package-shipped documents, then windows of the same text), --files files of equal size, one chunk per
--files-per-chunk files. Both sides write through the same writer tasks (before, a chunk's pipeline ended
in Ray Data's write_parquet): what differs is only the pass and the pool per chunk.

    .venv/bin/python benchmarks/bench_embed_chunks.py --docs 2000 --files 20 --files-per-chunk 2 --encoder-kind transformer
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def write_files(folder: Path, docs: int, files: int) -> list[tuple[str, str]]:
    from bench_scale import write_corpus

    rows = [line for path in write_corpus(folder / "source", docs) for line in path.read_text().splitlines()]
    out = []
    for i in range(files):
        path = folder / f"part-{i:03d}.jsonl"
        path.write_text("".join(line + "\n" for line in rows[i::files]))
        out.append((str(path), path.name))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--files-per-chunk", type=int, default=2)
    parser.add_argument("--encoder-kind", default="transformer", choices=["transformer", "static"])
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    import pyarrow.parquet as pq
    import ray

    from climb_ray.adapters.ray_data import embed_chunks, embed_files, static_encoder
    from climb_ray.config import CorpusConfig, EmbedConfig

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    corpus = CorpusConfig()
    embed = EmbedConfig(encoder=args.encoder_kind, max_tokens=args.max_tokens, num_actors=1, static_fit_docs=0)
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(Path(tmp), args.docs, args.files)
        static = static_encoder(files, args.docs, corpus, embed) if args.encoder_kind == "static" else None
        chunks = {i: files[s:s + args.files_per_chunk]
                  for i, s in enumerate(range(0, len(files), args.files_per_chunk))}
        seconds = {}
        for side in ("per chunk (before)", "one pass (ours)", "per chunk (before) ", "one pass (ours) "):
            out = Path(tmp) / f"out-{len(seconds)}"
            urls = {i: str(out / f"chunk-{i:05d}") for i in chunks}
            start = time.perf_counter()
            if side.startswith("per chunk"):
                for i, chunk in chunks.items():
                    embed_files(chunk, corpus, embed, "heuristic", urls[i], "cpu", static)
            else:
                for _ in embed_chunks(chunks, urls, corpus, embed, "heuristic", "cpu", static):
                    pass
            seconds[side] = time.perf_counter() - start
            assert pq.read_table(str(out)).num_rows == args.docs, side
            print(f"{side.strip():>20}: {seconds[side]:7.1f} s", flush=True)
    before = min(v for k, v in seconds.items() if k.startswith("per chunk"))
    ours = min(v for k, v in seconds.items() if k.startswith("one pass"))
    print(f"\n{args.docs} documents in {len(chunks)} chunks, {args.encoder_kind} encoder, one actor, {os.cpu_count()} CPUs; "
          f"best of two each: per chunk {before:.1f} s, one pass {ours:.1f} s: ours {before / ours:.2f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
