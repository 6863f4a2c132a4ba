"""Proxy training throughput: our loop (climb_ray.proxy.train fed by a MixtureStream over token
shards) vs a bare torch loop (forward, backward, AdamW step on pre-made batches) of the same
model, batch and sequence length, side by side, alternating, median of the repeats.

Ours does more per step: it draws the batch from memory-mapped shards, sets the schedule's learning
rate and clips the gradient norm. On a GPU (bf16 autocast) it also prints model FLOPs utilisation.

    .venv/bin/python benchmarks/bench_proxy.py                      # demo shape, 2 CPU threads
    .venv/bin/python benchmarks/bench_proxy.py --shape 62m --steps 30 --batch 32 --context 1024   # on a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {  # hidden, layers, heads, intermediate
    "demo": (128, 2, 4, 512),
    "small": (256, 4, 4, 1024),
    "62m": (512, 11, 8, 2048),
    "350m": (1024, 24, 16, 2816),
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 tensor-core peaks (vendor sheets)


def make_shards(folder: str, vocab: int, clusters: int = 4, tokens: int = 2_000_000) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = []
    for i in range(clusters):
        path = f"{folder}/sc{i:02d}.bin"
        rng.integers(1, vocab, size=tokens, dtype=np.uint16).tofile(path)
        arrays.append(np.memmap(path, dtype=np.uint16, mode="r"))
    return arrays


def ours(p, vocab: int, arrays, device: str) -> float:
    from climb_ray.mixture import MixtureStream
    from climb_ray.proxy import build_model, train

    stream = MixtureStream(arrays, [f"sc{i:02d}" for i in range(len(arrays))], [0.4, 0.3, 0.2, 0.1],
                           n_sequences=p.steps * p.batch_size, seq_len=p.context, max_epochs=15, seed=0)
    model = build_model(p, vocab, seed=0)
    stats = train(model, (stream.batch(i, p.batch_size) for i in range(p.steps)), p, device=device)
    return stats.tokens_per_second


def bare(p, vocab: int, device: str) -> float:
    import torch

    from climb_ray.proxy import build_model

    model = build_model(p, vocab, seed=0).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay,
                                  fused=device == "cuda")
    batches = torch.randint(1, vocab, (p.steps, p.batch_size, p.context), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    start = time.perf_counter()
    for step in range(p.steps):
        with autocast:
            loss = model(input_ids=batches[step], labels=batches[step]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return p.steps * p.batch_size * p.context / (time.perf_counter() - start)


def flops_per_token(p, vocab: int) -> float:
    """6 * parameters (tied embedding counted once, as the output layer) + attention scores (PaLM appendix B)."""
    h, layers, inter = p.hidden_size, p.num_layers, p.intermediate_size
    params = layers * (4 * h * h + 3 * h * inter) + vocab * h
    return 6 * params + 12 * layers * h * p.context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="demo")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (CPU only)")
    args = parser.parse_args()
    import torch

    from climb_ray.config import ProxyConfig

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(args.threads)
    h, layers, heads, inter = SHAPES[args.shape]
    p = ProxyConfig(hidden_size=h, num_layers=layers, num_heads=heads, intermediate_size=inter,
                    context=args.context, batch_size=args.batch, steps=args.steps, lr=1e-3,
                    warmup_steps=max(1, args.steps // 10))
    with tempfile.TemporaryDirectory() as folder:
        arrays = make_shards(folder, args.vocab)
        warm = dataclasses.replace(p, steps=2)
        ours(warm, args.vocab, arrays, device), bare(warm, args.vocab, device)  # first-use costs, both sides
        mine, base = [], []
        for _ in range(args.repeats):
            mine.append(ours(p, args.vocab, arrays, device))
            base.append(bare(p, args.vocab, device))
    what = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {args.threads} threads"
    print(f"proxy {args.shape} (hidden {h}, {layers} layers), batch {args.batch} x {args.context} tokens, "
          f"{args.steps} steps, vocab {args.vocab}, on {what}; median of {args.repeats}")
    print(f"  ours (stream + schedule + clipping): {statistics.median(mine):10.0f} tokens/s   runs {[round(x) for x in mine]}")
    print(f"  bare torch loop:                     {statistics.median(base):10.0f} tokens/s   runs {[round(x) for x in base]}")
    print(f"  ratio ours / bare: {statistics.median(mine) / statistics.median(base):.2f} (target >= 0.9)")
    if device == "cuda":
        peak = next((v for k, v in PEAK_BF16.items() if k in what), None)
        achieved = statistics.median(mine) * flops_per_token(p, args.vocab)
        mfu = f"{achieved / peak:.1%} of {peak / 1e12:.0f} TFLOP/s" if peak else "peak unknown for this GPU"
        print(f"  model FLOPs: {achieved / 1e12:.1f} TFLOP/s achieved, MFU {mfu}")


if __name__ == "__main__":
    main()
