"""Where torch runs: the one device choice of the encoder, the proxies and DoReMi."""

from __future__ import annotations


def pick_device(device: str | None = "auto") -> str:
    """`auto` (or None / ""): CUDA when torch sees a GPU, else the CPU; anything else as given."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
