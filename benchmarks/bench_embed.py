"""Embedding throughput: our Ray Data pipeline vs a plain transformers loop, side by side.

Same model (all-MiniLM-L6-v2, packaged), same texts (the demo corpus), same max tokens, same
number of torch threads. Each side runs twice, on the first --small and the first --docs texts;
every run includes loading the model (the Ray one also starting its actor; Ray itself is started
before the clock). Two ratios are printed: end to end at --docs, and marginal (steady-state)
throughput = extra tokens / extra seconds between the two sizes, which leaves out the fixed
start-up costs that a long run amortises.

    .venv/bin/python benchmarks/bench_embed.py --small 500 --docs 2500 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_texts(path: str, n: int) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line, _ in zip(f, range(n))]


def plain_loop(texts: list[str], max_tokens: int, batch_size: int, threads: int) -> tuple[float, int]:
    """The baseline: tokenizer + model + mean pooling in corpus order, nothing else."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from climb_ray.embed import resolve_model

    start = time.perf_counter()
    torch.set_num_threads(threads)
    path = resolve_model("all-MiniLM-L6-v2")
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    tokens = 0
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_tokens,
                            return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            tokens += int(enc["attention_mask"].sum())
    return time.perf_counter() - start, tokens


def ray_pipeline(corpus: str, n: int, max_tokens: int, batch_size: int, threads: int) -> tuple[float, int]:
    """Our embed stage's pipeline (read, encode, score, write Parquet) on a Ray already started."""
    import pyarrow.parquet as pq

    from climb_ray.adapters.ray_data import embed_files
    from climb_ray.config import CorpusConfig, EmbedConfig

    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "subset.jsonl"
        with open(corpus, encoding="utf-8") as f, open(subset, "w", encoding="utf-8") as out:
            out.writelines(line for line, _ in zip(f, range(n)))
        embed = EmbedConfig(max_tokens=max_tokens, batch_size=batch_size, num_actors=1, threads=threads)
        start = time.perf_counter()
        embed_files([(str(subset), "subset.jsonl")], CorpusConfig(), embed, "heuristic", f"{tmp}/out")
        seconds = time.perf_counter() - start
        n_tokens = pq.read_table(f"{tmp}/out", columns=["n_tokens"]).column("n_tokens").to_numpy()
    return seconds, int(sum(min(int(t), max_tokens) for t in n_tokens))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="data/demo_corpus.jsonl")
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--docs", type=int, default=2500)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not Path(args.corpus).is_file():
        sys.exit(f"{args.corpus} is missing: run `climb-ray corpus demo` first")
    import ray

    texts = load_texts(args.corpus, args.docs)
    plain = {n: plain_loop(texts[:n], args.max_tokens, args.batch_size, args.threads) for n in (args.small, args.docs)}
    ray.init(address="local", num_cpus=args.threads, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ours = {n: ray_pipeline(args.corpus, n, args.max_tokens, args.batch_size, args.threads)
            for n in (args.small, args.docs)}
    ray.shutdown()
    print(f"max_tokens {args.max_tokens}, batch {args.batch_size}, threads {args.threads}, cpus {os.cpu_count()}")
    for name, runs in (("plain loop", plain), ("Ray Data ours", ours)):
        for n, (secs, toks) in runs.items():
            print(f"{name:<14} {n:6d} docs {secs:7.1f} s {toks:9d} tokens {toks / secs:7.0f} tokens/s")
    end_to_end = (ours[args.docs][1] / ours[args.docs][0]) / (plain[args.docs][1] / plain[args.docs][0])

    def marginal(runs):
        (s1, t1), (s2, t2) = runs[args.small], runs[args.docs]
        return (t2 - t1) / (s2 - s1)

    print(f"ratio ours / plain, end to end at {args.docs} docs (tokens/s): {end_to_end:.2f}")
    print(f"ratio ours / plain, marginal throughput {args.small}->{args.docs} docs: "
          f"{marginal(ours) / marginal(plain):.2f}  (target >= 0.9)")

if __name__ == "__main__":
    main()
