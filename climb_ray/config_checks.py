"""The checks of every config value: each dotted field's rule, the checks across fields, and validate().

Kept apart from the dataclasses (climb_ray/config.py); every error is a ConfigError naming the field
and the value.
"""

from __future__ import annotations

import math
import re

from climb_ray.config import Config, ConfigError


def _at_least(lo):
    return lambda v: None if v >= lo else f"must be at least {lo}"


def _between(lo, hi):
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def _open_unit(v):
    return None if 0 < v < 1 else "must be strictly between 0 and 1"


def _one_of(*choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


COMMAND_FIELDS = ("mixture_json", "blend", "score_file", "trial_dir", "seed", "index", "tokens_dir", "python")
PREFIX_FIELDS = ("name", "index", "tokens_dir")


def template_fields(template: str) -> set[str]:
    """The {placeholders} of a str.format template (ValueError when its braces are malformed)."""
    import string

    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _template(*allowed, quoted=False):
    """quoted: the values go in shell-quoted, so a conversion (!r) or format spec (:.5) would break the quoting."""
    def check(v):
        import string

        try:
            unknown = sorted(template_fields(v) - set(allowed))
            parts = list(string.Formatter().parse(v))
        except ValueError as err:
            return f"is not a template ({err}; write a literal brace as {{{{ or }}}})"
        if unknown:
            return f"unknown placeholder {{{unknown[0]}}} (known: {', '.join(allowed)})"
        for _, name, spec, conversion in parts if quoted else []:
            if name is not None and (spec or conversion):
                shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
                return (f"placeholder {{{shown}}}: no conversion or format spec (the values are shell-quoted); "
                        f"write {{{name}}}")
        return None
    return check


def _positive_list(v):
    return None if v and all(x >= 1 for x in v) else "must be a non-empty list of counts >= 1"


# dotted field -> check returning None when the value is fine, else what is wrong with it
_RULES = {
    "corpus.format": _one_of("auto", "jsonl", "parquet", "text"),
    "corpus.min_chars": _at_least(0),
    "corpus.max_chars": _at_least(1),
    "corpus.max_skip_share": _between(0, 1),
    "embed.max_tokens": _at_least(1),
    "embed.batch_size": _at_least(1),
    "embed.encoder": _one_of("transformer", "static"),
    "embed.dtype": _one_of("auto", "float32", "bfloat16", "float16"),
    "embed.num_actors": _at_least(0),
    "embed.gpus_per_actor": _at_least(0),
    "embed.cpus_per_actor": _at_least(0),
    "embed.threads": _at_least(0),
    "embed.chunk_docs": _at_least(1),
    "cluster.backend": _one_of("faiss", "cuml", "sklearn"),
    "cluster.k_init": _at_least(1),
    "cluster.fit_sample": _at_least(1),
    "cluster.niter": _at_least(1),
    "cluster.merge_method": _one_of("ward_kmeans", "ward_documents", "ward_centroid"),
    "cluster.merge_distance": _at_least(0),
    "cluster.n_super_clusters": _at_least(0),
    "cluster.prune_threshold": _between(0, 1),
    "cluster.report_docs": _at_least(1),
    "tokens.vocab_size": _at_least(256),
    "tokens.train_docs": _at_least(1),
    "tokens.sample": lambda v: None if v in ("auto", "all") or v.replace("_", "").isdigit() and int(v) > 0 else
    "must be auto, all or a number of tokens above 0",
    "proxy.hidden_size": _at_least(1),
    "proxy.num_layers": _at_least(1),
    "proxy.num_heads": _at_least(1),
    "proxy.intermediate_size": _at_least(1),
    "proxy.context": _at_least(2),
    "proxy.batch_size": _at_least(1),
    "proxy.steps": _at_least(1),
    "proxy.lr": _at_least(0),
    "proxy.warmup_steps": _at_least(0),
    "proxy.schedule": _one_of("cosine", "wsd"),
    "proxy.weight_decay": _at_least(0),
    "proxy.grad_clip": _at_least(0),
    "proxy.min_lr_ratio": _between(0, 1),
    "proxy.decay_fraction": _between(0, 1),
    "proxy.threads": _at_least(0),
    "proxy.cpus_per_trial": _at_least(0),
    "proxy.gpus_per_trial": _at_least(0),
    "proxy.init": _one_of("scratch", "pretrained"),
    "proxy.command": _template(*COMMAND_FIELDS, quoted=True),
    "proxy.data_prefix": _template(*PREFIX_FIELDS),
    "proxy.command_timeout_s": _at_least(0),
    "target.max_docs": _at_least(1),
    "target.max_doc_tokens": _at_least(1),
    "target.max_items": _at_least(1),
    "target.choice_metric": _one_of("acc", "acc_norm"),
    "target.batch_size": _at_least(1),
    "search.method": _one_of("climb", "random", "regmix", "optuna"),
    "search.schedule": _positive_list,
    "search.temperature": _at_least(0),
    "search.strength_min": _at_least(1e-9),
    "search.max_epochs": _at_least(1e-9),
    "search.min_weight": _between(0, 0.5),
    "search.n_candidates": _at_least(1),
    "search.top_pool_min": _at_least(1),
    "search.answer": _one_of("confirmed", "best", "topk_mean", "best_seen"),
    "search.acquisition": _one_of("ucb", "paper"),
    "search.exploration": _at_least(0),
    "search.local_fraction": _between(0, 1),
    "search.remeasure_fraction": _between(0, 1),
    "search.answer_top_k": _at_least(1),
    "search.max_concurrent_trials": _at_least(0),
    "search.max_failures": _at_least(0),
    "doremi.reference": _one_of("uniform", "prior"),
    "doremi.step_size": _at_least(0),
    "doremi.smoothing": _between(0, 1),
    "doremi.steps": _at_least(0),
    "compare.methods": lambda v: None if v and all(m in ("climb", "regmix", "random", "optuna", "doremi") for m in v)
    else "must be a non-empty list of climb, regmix, random, optuna, doremi",
    "compare.references": lambda v: None if all(r in ("uniform", "prior") for r in v) else "may hold uniform and prior",
    "compare.seeds": _at_least(1),
    "compare.search_seeds": _at_least(1),
    "compare.eval_steps": _at_least(0),
    "predictor.learning_rate": _at_least(1e-9),
    "predictor.num_rounds": _at_least(1),
    "predictor.max_depth": _at_least(1),
    "predictor.min_child_samples": _at_least(1),
    "predictor.reg_alpha": _at_least(0),
    "predictor.reg_lambda": _at_least(0),
    "predictor.valid_fraction": _open_unit,
    "predictor.early_stopping_max": _at_least(1),
    "predictor.ensemble": _at_least(1),
    "serve.port": _between(1, 65535),
    "serve.route_prefix": lambda v: None if v == "/" or (re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", v)) else
    "must be / or a path such as /climb (letters, digits, . _ ~ -; no trailing slash)",
    "serve.max_batch": _at_least(1),
    "serve.max_body_bytes": _at_least(1),
    "serve.num_replicas": _at_least(1),
    "serve.cpus_per_replica": _at_least(0),
    "serve.watch_s": _at_least(0),
    "export.token_budget": _at_least(0),
    "export.shard_mb": _at_least(0.001),
    "export.max_epochs": _at_least(0),
    "export.seed": _at_least(0),
    "export.format": _one_of("parquet", "hf", "megatron"),
    "resources.num_cpus": _at_least(0),
    "resources.num_gpus": _at_least(-1),
    "resources.device": _one_of("auto", "gpu", "cpu"),
    "tracking.log_every_steps": _at_least(0),
}


def _check_proxy(cfg: Config) -> None:
    p = cfg.proxy
    if p.init == "pretrained" and not p.init_from:
        raise ConfigError("proxy.init='pretrained': set proxy.init_from to the causal LM to continue (a folder or "
                          "hub name)")
    if p.init == "scratch" and p.init_from:
        raise ConfigError(f"proxy.init_from={p.init_from!r}: proxy.init is 'scratch'; set proxy.init=pretrained "
                          "to continue this model, or clear proxy.init_from")
    if p.init == "pretrained" and p.command:
        raise ConfigError("proxy.init='pretrained': applies to the built-in proxy, and proxy.command is set (your "
                          "trainer loads its own model); set proxy.init=scratch")
    if p.init == "pretrained" and cfg.tokens.tokenizer == "bpe":
        raise ConfigError(f"tokens.tokenizer='bpe': a pretrained proxy reads the run's token ids, so they must "
                          f"come from its own tokenizer: set tokens.tokenizer={p.init_from!r}")
    if p.data_prefix and not p.command:
        raise ConfigError(f"proxy.data_prefix={p.data_prefix!r}: only used by proxy.command, which is not set")


def _get(cfg: Config, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def validate(cfg: Config) -> Config:
    """Raise ConfigError naming the first wrong field and its value; return cfg when all is fine."""
    for dotted, rule in _RULES.items():
        value = _get(cfg, dotted)
        problem = rule(value)
        if problem:
            raise ConfigError(f"{dotted}={value!r}: {problem}")
    pairs = [
        ("corpus.max_chars", "corpus.min_chars", "must be at least corpus.min_chars"),
        ("search.strength_max", "search.strength_min", "must be at least search.strength_min"),
    ]
    for big, small, message in pairs:
        if _get(cfg, big) < _get(cfg, small):
            raise ConfigError(f"{big}={_get(cfg, big)!r}: {message} ({_get(cfg, small)!r})")
    if cfg.proxy.hidden_size % cfg.proxy.num_heads:
        raise ConfigError(
            f"proxy.hidden_size={cfg.proxy.hidden_size}: must be divisible by "
            f"proxy.num_heads ({cfg.proxy.num_heads})"
        )
    t = cfg.target
    if t.weights and len(t.weights) != len(t.paths) + len(t.tasks):
        raise ConfigError(f"target.weights={t.weights!r}: {len(t.weights)} weights for {len(t.paths)} target.paths "
                          f"and {len(t.tasks)} target.tasks")
    if len(t.num_fewshot) > 1 and len(t.num_fewshot) != len(t.tasks) or any(n < 0 for n in t.num_fewshot):
        raise ConfigError(f"target.num_fewshot={t.num_fewshot!r}: one count >= 0, or one for each of the "
                          f"{len(t.tasks)} target.tasks")
    if any(not math.isfinite(w) or w < 0 for w in cfg.target.weights) or (
            cfg.target.weights and max(cfg.target.weights) <= 0):
        raise ConfigError(f"target.weights={cfg.target.weights!r}: must be finite and >= 0 with a positive sum")
    if cfg.seed < 0:
        raise ConfigError(f"seed={cfg.seed!r}: must be at least 0 (numpy seeds are non-negative)")
    _check_proxy(cfg)
    c = cfg.corpus
    if c.token_ids_field and not c.label_field:
        raise ConfigError(f"corpus.token_ids_field={c.token_ids_field!r}: token-ID corpora are not embedded, so "
                          "they need their clusters given: set corpus.label_field")
    if c.token_ids_field and cfg.tokens.tokenizer == "bpe":
        raise ConfigError(f"corpus.token_ids_field={c.token_ids_field!r}: set tokens.tokenizer to the tokenizer "
                          "the IDs were made with (a path or name), not 'bpe'")
    if c.label_field and c.label_field in (c.text_field if not c.token_ids_field else c.token_ids_field, c.id_field):
        raise ConfigError(f"corpus.label_field={c.label_field!r}: the same field as the document's text or id")
    if not cfg.run_dir:
        raise ConfigError("run_dir='': a run folder is needed")
    return cfg
