"""The proxy LM: a small Llama-style decoder (transformers) or a pretrained causal LM, and one readable
training loop.

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
    """A fresh Llama-style causal LM of the configured shape, or (proxy.init pretrained) the causal LM
    at p.init_from, any transformers AutoModelForCausalLM, in float32."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if p.init == "pretrained":
        model = load_pretrained(p.init_from)
        check_fits_model(p, model.config, model.get_input_embeddings().num_embeddings, vocab_size)
        return model
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=p.hidden_size, intermediate_size=p.intermediate_size,
                         num_hidden_layers=p.num_layers, num_attention_heads=p.num_heads,
                         num_key_value_heads=p.num_heads, max_position_embeddings=p.context,
                         tie_word_embeddings=True, attn_implementation="sdpa")
    return LlamaForCausalLM(config)


def load_pretrained(name: str, *, config_only: bool = False):
    """The causal LM (or only its config) at `name`: a local folder, or a hub name where a hub is reachable."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from climb_ray.config import ConfigError

    try:
        if config_only:
            return AutoConfig.from_pretrained(name)
        return AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as err:
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"proxy.init_from={name!r}: cannot load a causal LM from it ({why})") from None


def check_pretrained(p: ProxyConfig, tokenizer, vocab_size: int) -> None:
    """Before any trial: the pretrained proxy loads (its config only), and the run's tokenizer and
    proxy.context fit it."""
    config = load_pretrained(p.init_from, config_only=True)
    check_fits_model(p, config, getattr(config.get_text_config(), "vocab_size", vocab_size), vocab_size)
    check_tokenizer(p, tokenizer)


def check_fits_model(p: ProxyConfig, config, embeddings: int, vocab_size: int) -> None:
    """The run's token ids and proxy.context must fit the pretrained model: a one-line error, not an
    index error deep in a forward pass."""
    from climb_ray.config import ConfigError

    config = config.get_text_config()
    if vocab_size > embeddings:
        raise ConfigError(f"proxy.init_from={p.init_from!r} embeds {embeddings} token ids, the run's tokenizer has "
                          f"{vocab_size}: set tokens.tokenizer to the model's own tokenizer (e.g. {p.init_from!r})")
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions and p.context > positions:
        raise ConfigError(f"proxy.context={p.context}: proxy.init_from={p.init_from!r} takes at most {positions} "
                          "positions")


def check_tokenizer(p: ProxyConfig, tokenizer) -> None:
    """With a pretrained proxy, the run's tokenizer (a `tokenizers.Tokenizer`) must give every token the
    id the model's own tokenizer gives it, where init_from has one (else only the sizes are checked)."""
    from transformers import AutoTokenizer

    from climb_ray.config import ConfigError

    try:
        own = AutoTokenizer.from_pretrained(p.init_from)
    except (OSError, ValueError, KeyError, TypeError):
        return
    ours = tokenizer.get_vocab(with_added_tokens=True)
    wrong = next((t for t, i in own.get_vocab().items() if ours.get(t) != i), None)
    if wrong is not None:
        raise ConfigError(f"tokens.tokenizer is not the tokenizer of proxy.init_from={p.init_from!r} (token "
                          f"{wrong!r} is id {own.get_vocab()[wrong]} there, {ours.get(wrong)} in the run): "
                          f"set tokens.tokenizer={p.init_from!r} and redo the tokens stage")


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


def train(model, batches, p: ProxyConfig, *, device: str, every: int = 0, report=None, loss_fn=None) -> TrainStats:
    """Train `model` on `batches` (int64 arrays (batch, seq_len), one per step) for p.steps steps: the one
    training loop (AdamW, the learning-rate schedule, clipping, bf16 autocast on CUDA, torch.compile).
    report(step, loss): called after every `every` steps with the mean loss of those steps (a device sync).
    loss_fn(forward, ids, step): the loss to minimise instead of the causal LM loss (DoReMi's Group DRO)."""
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
            loss = step_fn(input_ids=ids, labels=ids).loss if loss_fn is None else loss_fn(step_fn, ids, step)
        loss.backward()
        if p.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())  # kept on the device: no sync per step
        stats.steps += 1
        stats.tokens += int(ids.numel())
        if report is not None and every and stats.steps % every == 0:
            report(stats.steps, float(torch.stack(losses[-every:]).float().mean()))
    stats.losses = torch.stack(losses).float().tolist() if losses else []
    stats.seconds = time.perf_counter() - start
    return stats


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
