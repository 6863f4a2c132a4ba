"""DoReMi (Xie et al., NeurIPS 2023, arXiv 2305.10429): domain weights learned online by Group DRO.

Algorithm 1 of the paper, with the run's clusters as the domains:
1. train a reference proxy on the reference mixture (uniform, or the clusters' token shares);
2. train a second proxy of the same shape and seed on the uniform mixture with Group DRO: each step,
   each domain's excess loss over the reference (clipped at 0 per token, averaged over the domain's
   tokens in the batch) moves the domain weights by exponentiated gradient, the weights are smoothed
   towards uniform, and the proxy descends the loss weighted by them;
3. the answer is the average of the domain weights over all steps.
Both mixtures are fitted to the epoch caps (search.max_epochs) by water-filling, and each proxy
trains doremi.steps steps (0: the two together train as many tokens as the search's proxies).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from climb_ray.config import Config, DoReMiConfig, ProxyConfig
from climb_ray.mixture import MixtureError, MixtureStream, weight_caps

HISTORY_ROWS = 200  # rows of the weight history kept by to_json at most


def doremi_steps(cfg: Config) -> int:
    """Optimizer steps of each proxy: doremi.steps, or half the search's proxy steps when 0."""
    if cfg.doremi.steps < 0:
        raise ValueError(f"doremi.steps={cfg.doremi.steps}: must be at least 0 (0 = half the search's budget)")
    return cfg.doremi.steps or max(1, sum(cfg.search.schedule) * cfg.proxy.steps // 2)


def update_weights(weights: np.ndarray, excess: np.ndarray, *, step_size: float, smoothing: float) -> np.ndarray:
    """One exponentiated-gradient step in log space, a = softmax(log a + eta * excess), then
    (1 - c) a + c / k: stays on the simplex for any excess, huge or infinite."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    lam = np.asarray(excess, dtype=np.float64).reshape(-1)
    if len(lam) != len(w):
        raise ValueError(f"{len(lam)} excess losses for {len(w)} domain weights")
    if np.isnan(lam).any() or np.isneginf(lam).any():
        raise ValueError(f"excess losses must be numbers or +inf: {lam.tolist()}")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        z = np.where(w > 0, np.log(w) + step_size * lam, -np.inf)  # a zero weight stays zero
    if np.isposinf(z).any():  # overflow: the weight goes to the domains whose step was infinite
        new = np.isposinf(z).astype(np.float64)
    else:
        new = np.exp(z - z.max())
    return (1.0 - smoothing) * new / new.sum() + smoothing / len(w)


def domain_excess(proxy_losses, ref_losses, domains, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per domain: the mean over its tokens of max(proxy - reference, 0), and its token count.

    proxy_losses, ref_losses: per-token losses (batch, tokens), torch tensors or numpy arrays;
    domains: the domain of each row. Domains absent from the batch get excess 0 and 0 tokens."""
    proxy, ref, rows = _numpy(proxy_losses), _numpy(ref_losses), _numpy(domains).astype(np.int64).reshape(-1)
    if proxy.ndim != 2 or proxy.shape != ref.shape or len(rows) != proxy.shape[0]:
        raise ValueError(f"losses {proxy.shape} and {ref.shape} with {len(rows)} domains: want (batch, tokens) twice "
                         "and one domain per row")
    if len(rows) and (rows.min() < 0 or rows.max() >= k):
        raise ValueError(f"domain {int(rows.max() if rows.max() >= k else rows.min())} is outside 0..{k - 1}")
    clipped = np.bincount(rows, weights=np.maximum(proxy - ref, 0.0).sum(axis=1), minlength=k)
    tokens = np.bincount(rows, minlength=k).astype(np.int64) * proxy.shape[1]
    return np.divide(clipped, tokens, out=np.zeros(k), where=tokens > 0), tokens


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def dro_loss(token_losses, domains: np.ndarray, weights: np.ndarray):
    """The proxy's objective: sum over the domains in the batch of weight * mean token loss of the domain."""
    import torch

    domains = np.asarray(domains, dtype=np.int64)
    rows = np.bincount(domains, minlength=len(weights))
    share = np.asarray(weights, dtype=np.float64)[domains] / rows[domains]  # each row: a_i / rows of domain i
    share = torch.as_tensor(share, dtype=token_losses.dtype, device=token_losses.device)
    return (token_losses.mean(dim=1) * share).sum()


def epoch_caps(tokens, *, max_epochs: float, n_sequences: int, seq_len: int) -> np.ndarray:
    """The largest share of n_sequences each cluster can supply within max_epochs passes, in whole
    sequences; 0 for a cluster shorter than one sequence (MixtureStream refuses more)."""
    return weight_caps(tokens, n_sequences * seq_len, max_epochs, seq_len=seq_len)


def fit_to_caps(weights, caps) -> np.ndarray:
    """The weights closest in spirit to `weights` with w_i <= caps_i, summing to 1, by water-filling:
    clip to the caps, hand the excess to the uncapped domains in proportion to their weights, repeat."""
    base = np.asarray(weights, dtype=np.float64).reshape(-1)
    caps = np.asarray(caps, dtype=np.float64).reshape(-1)
    if len(base) != len(caps):
        raise MixtureError(f"{len(base)} weights for {len(caps)} caps")
    if not np.isfinite(base).all() or (base < 0).any() or base.sum() <= 0:
        raise MixtureError(f"weights must be finite, >= 0 and not all 0: {base.tolist()}")
    if np.isnan(caps).any() or (caps < 0).any():
        raise MixtureError(f"caps must be >= 0: {caps.tolist()}")
    if caps.sum() < 1 - 1e-9:
        raise MixtureError(f"the clusters' total capacity is {caps.sum():.4g} of the tokens asked for (less than 1) "
                           "within search.max_epochs: train fewer tokens or allow more epochs")
    w, fixed = base / base.sum(), np.zeros(len(base), dtype=bool)
    while (over := ~fixed & (w > caps * (1 + 1e-12))).any():
        fixed |= over
        w[fixed] = caps[fixed]
        free = ~fixed
        share = base[free] if base[free].sum() > 0 else caps[free]  # no weight left: spread by capacity
        w[free] = (1.0 - w[fixed].sum()) * share / share.sum() if share.sum() > 0 else 0.0
    return w


@dataclass
class DoReMiResult:
    names: list[str]
    weights: np.ndarray  # the answer: average of the domain weights over all steps, sums to 1
    final_weights: np.ndarray  # the domain weights after the last step
    reference_weights: np.ndarray  # the mixture the reference proxy trained on (fitted to the caps)
    train_weights: np.ndarray  # the mixture the DRO proxy's batches are drawn from (uniform fitted to the caps)
    history: np.ndarray  # (steps, k): the domain weights of every step
    steps: int  # optimizer steps of each proxy
    tokens: int  # tokens trained by both proxies together
    reference_seconds: float
    proxy_seconds: float
    reference_loss_last: float  # reference proxy's training loss, mean of the last 5 steps
    proxy_loss_last: float  # DRO proxy's mean token loss (unweighted), mean of the last 5 steps
    mean_excess: np.ndarray  # (k,): each domain's excess loss averaged over the steps
    seed: int = 0

    def to_json(self) -> dict:
        """A JSON-serialisable record: per-cluster mappings, the history at most HISTORY_ROWS rows."""
        def named(values):
            return {n: float(v) for n, v in zip(self.names, values)}

        rows = np.unique(np.linspace(0, len(self.history) - 1, min(len(self.history), HISTORY_ROWS)).round()
                         .astype(np.int64))
        return {
            "method": "doremi", "names": list(self.names), "weights": named(self.weights),
            "final_weights": named(self.final_weights), "reference_weights": named(self.reference_weights),
            "train_weights": named(self.train_weights), "mean_excess": named(self.mean_excess),
            "history": {"steps": rows.tolist(), "weights": self.history[rows].tolist()},
            "steps": int(self.steps), "tokens": int(self.tokens), "seed": int(self.seed),
            "reference_seconds": float(self.reference_seconds), "proxy_seconds": float(self.proxy_seconds),
            "reference_loss_last": float(self.reference_loss_last), "proxy_loss_last": float(self.proxy_loss_last),
        }


def run_doremi(arrays: list[np.ndarray], names: list[str], cfg: Config, vocab_size: int, *, device: str = "cpu",
               seed: int | None = None, progress=None, shares=None) -> DoReMiResult:
    """DoReMi's domain weights for these clusters' token arrays; progress(step, weights) after each DRO step.
    shares: the clusters' token shares (doremi.reference=prior) when the arrays are a sample of them."""
    from climb_ray.device import pick_device
    from climb_ray.proxy import build_model, train

    if len(arrays) != len(names):
        raise ValueError(f"{len(arrays)} token arrays for {len(names)} clusters")
    seed, device, steps = cfg.seed if seed is None else seed, pick_device(device), doremi_steps(cfg)
    p = dataclasses.replace(cfg.proxy, steps=steps)  # the schedule follows DoReMi's length
    reference_weights, train_weights = _mixtures(arrays, cfg, p, shares)
    start = time.perf_counter()
    stream = _stream(arrays, names, reference_weights, cfg, p, seed)
    reference = build_model(p, vocab_size, seed=seed)
    stats = train(reference, (stream.batch(i, p.batch_size) for i in range(steps)), p, device=device)
    reference.eval().requires_grad_(False)
    middle = time.perf_counter()
    stream = _stream(arrays, names, train_weights, cfg, p, seed + 1)
    model = build_model(p, vocab_size, seed=seed)
    history, excess, losses = _train_dro(model, reference, stream, p, cfg.doremi, device=device, progress=progress)
    average = history.mean(axis=0)
    return DoReMiResult(
        names=list(names), weights=average / average.sum(), final_weights=history[-1].copy(),
        reference_weights=reference_weights, train_weights=train_weights, history=history, steps=steps,
        tokens=stats.tokens + p.tokens, reference_seconds=middle - start,
        proxy_seconds=time.perf_counter() - middle, reference_loss_last=float(np.mean(stats.losses[-5:])),
        proxy_loss_last=float(np.mean(losses[-5:])), mean_excess=excess.mean(axis=0), seed=seed)


def _mixtures(arrays, cfg: Config, p: ProxyConfig, shares=None) -> tuple[np.ndarray, np.ndarray]:
    """The reference mixture and the DRO training mixture (uniform), both fitted to the epoch caps."""
    tokens = np.array([len(a) for a in arrays], dtype=np.int64)
    if cfg.doremi.reference not in ("uniform", "prior"):
        raise ValueError(f"doremi.reference={cfg.doremi.reference!r}: must be uniform or prior")
    prior = tokens.astype(np.float64) if shares is None else np.asarray(shares, dtype=np.float64)
    reference = np.ones(len(arrays)) if cfg.doremi.reference == "uniform" else prior
    caps = epoch_caps(tokens, max_epochs=cfg.search.max_epochs, n_sequences=p.sequences,
                      seq_len=p.context)
    try:
        return fit_to_caps(reference, caps), fit_to_caps(np.ones(len(arrays)), caps)
    except MixtureError as err:
        sampled = "" if shares is None else (" (tokens/ may hold only the proxies' sample: set tokens.sample to "
                                             "DoReMi's budget or all, and --redo tokens)")
        raise MixtureError(f"DoReMi trains {p.steps} steps of {p.batch_size} x {p.context} tokens per proxy: "
                           f"{err}{sampled}") from None


def _stream(arrays, names, weights, cfg: Config, p: ProxyConfig, seed: int) -> MixtureStream:
    return MixtureStream(arrays, names, weights, n_sequences=p.sequences, seq_len=p.context,
                         max_epochs=cfg.search.max_epochs, seed=seed)


def _train_dro(model, reference, stream: MixtureStream, p: ProxyConfig, d: DoReMiConfig, *, device: str, progress):
    """Group DRO training of `model` against the frozen `reference`, in proxy.train's loop with the DRO
    loss; the domain weights and excess losses of every step, (steps, k) each, and the mean token losses."""
    import torch

    from climb_ray.proxy import train

    k = len(stream.arrays)
    state = {"weights": np.full(k, 1.0 / k)}
    history, excess, losses = np.zeros((p.steps, k)), np.zeros((p.steps, k)), []

    def dro_step(forward, ids, step):
        domains = stream.cluster[step * p.batch_size:(step + 1) * p.batch_size]
        token_losses = _token_losses(forward, ids, device)
        with torch.no_grad():
            ref_losses = _token_losses(reference, ids, device)
        excess[step] = domain_excess(token_losses, ref_losses, domains, k)[0]
        state["weights"] = update_weights(state["weights"], excess[step], step_size=d.step_size,
                                          smoothing=d.smoothing)
        history[step] = state["weights"]
        losses.append(float(token_losses.detach().mean()))
        if progress is not None:
            progress(step, state["weights"].copy())
        return dro_loss(token_losses, domains, state["weights"])

    train(model, (stream.batch(step, p.batch_size) for step in range(p.steps)), p, device=device, loss_fn=dro_step)
    return history, excess, losses


def _token_losses(model, ids, device: str):
    """Next-token cross-entropy of every position, (batch, seq_len - 1), in float32."""
    import torch
    import torch.nn.functional as F

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else contextlib.nullcontext()
    with autocast:
        logits = model(input_ids=ids).logits
    targets = ids[:, 1:]
    losses = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), targets.flatten(), reduction="none")
    return losses.view(targets.shape)
