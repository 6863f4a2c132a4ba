"""The proxy LM: a small Llama-style decoder (transformers) and one readable training loop.

The loop is nanoGPT's: for each step, take a batch, forward under autocast (bf16 on CUDA),
backward, clip the gradient norm, set the learning rate of the schedule, AdamW step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from climb_ray.config import ProxyConfig


def build_model(p: ProxyConfig, vocab_size: int, *, seed: int):
    """A fresh Llama-style causal LM of the configured shape, or the checkpoint at p.init_from."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if p.init_from:
        model = LlamaForCausalLM.from_pretrained(p.init_from) if _is_hf_dir(p.init_from) else None
        if model is None:
            raise ValueError(f"proxy.init_from={p.init_from!r}: not a folder holding a transformers checkpoint")
        if model.config.vocab_size < vocab_size:
            raise ValueError(f"proxy.init_from={p.init_from!r} has a vocabulary of {model.config.vocab_size}, "
                             f"the run's tokenizer needs {vocab_size}: use that model's tokenizer (tokens.tokenizer)")
        return model
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=p.hidden_size, intermediate_size=p.intermediate_size,
                         num_hidden_layers=p.num_layers, num_attention_heads=p.num_heads,
                         num_key_value_heads=p.num_heads, max_position_embeddings=p.context,
                         tie_word_embeddings=True, attn_implementation="sdpa")
    return LlamaForCausalLM(config)


def _is_hf_dir(path: str) -> bool:
    import os

    return os.path.isfile(os.path.join(path, "config.json"))


def lr_at(step: int, p: ProxyConfig) -> float:
    """Learning rate at optimizer step `step` (0-based): linear warm-up, then cosine decay to
    min_lr_ratio * lr, or warmup-stable-decay (constant, then linear to the minimum over the last
    decay_fraction of the steps)."""
    low = p.lr * p.min_lr_ratio
    if step < p.warmup_steps:
        return p.lr * (step + 1) / p.warmup_steps
    if p.schedule == "wsd":
        decay_steps = max(1, int(round(p.decay_fraction * p.steps)))
        decay_start = max(p.warmup_steps, p.steps - decay_steps)
        if step < decay_start:
            return p.lr
        frac = (step - decay_start + 1) / max(1, p.steps - decay_start)
        return p.lr - (p.lr - low) * min(1.0, frac)
    frac = (step - p.warmup_steps + 1) / max(1, p.steps - p.warmup_steps)
    return low + 0.5 * (p.lr - low) * (1 + math.cos(math.pi * min(1.0, frac)))


@dataclass
class TrainStats:
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)  # training loss at every step

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def train(model, batches, p: ProxyConfig, *, device: str) -> TrainStats:
    """Train `model` on `batches` (int64 arrays (batch, seq_len), one per step) for p.steps steps."""
    import torch

    model.to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=(0.9, 0.95), weight_decay=p.weight_decay,
                                  fused=device.startswith("cuda"))
    step_fn = torch.compile(model) if p.compile else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else _nothing()
    stats, losses = TrainStats(), []
    start = time.perf_counter()
    for step, batch in enumerate(batches):
        if step >= p.steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, p)
        ids = torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True)
        with autocast:
            loss = step_fn(input_ids=ids, labels=ids).loss
        loss.backward()
        if p.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())  # kept on the device: no sync per step
        stats.steps += 1
        stats.tokens += int(ids.numel())
    stats.losses = torch.stack(losses).float().tolist() if losses else []
    stats.seconds = time.perf_counter() - start
    return stats


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
