"""The checks of config values: the checks a field declares (climb_ray/config.py `setting(default, check, ...)`),
the checks across fields, and validate().

Every error is a ConfigError naming the field and the value. config.py imports the checks from here, so
this module reads config.py only when validate() runs.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from climb_ray.config import Config


def at_least(lo, why: str = ""):
    return lambda v: None if v >= lo else f"must be at least {lo}" + (f" ({why})" if why else "")


def between(lo, hi):
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def open_unit(v):
    return None if 0 < v < 1 else "must be strictly between 0 and 1"


def one_of(*choices):
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def list_of(*choices):
    """A non-empty list of some of `choices`."""
    return lambda v: None if v and all(x in choices for x in v) else f"must be a non-empty list of {', '.join(choices)}"


def subset_of(*choices):
    return lambda v: None if all(x in choices for x in v) else f"may hold {' and '.join(choices)}"


def required(what: str):
    return lambda v: None if v else what


def route_path(v):
    return None if v == "/" or re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", v) else \
        "must be / or a path such as /climb (letters, digits, . _ ~ -; no trailing slash)"


COMMAND_FIELDS = ("mixture_json", "blend", "score_file", "trial_dir", "seed", "index", "tokens_dir", "python")
PREFIX_FIELDS = ("name", "index", "tokens_dir")


def template_fields(template: str) -> set[str]:
    """The {placeholders} of a str.format template (ValueError when its braces are malformed)."""
    import string

    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def template(*allowed, quoted=False):
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


def positive_list(v):
    return None if v and all(x >= 1 for x in v) else "must be a non-empty list of counts >= 1"


def token_sample(v):
    v = str(v).strip()
    if v in ("auto", "all"):
        return None
    try:
        return None if v.isascii() and int(v) > 0 else "must be auto, all or a number of tokens above 0"
    except ValueError:
        return "must be auto, all or a number of tokens above 0"


# Checks that span several fields, each cfg -> None or the error (naming a field and its value)

def _sizes(cfg: Config) -> str | None:
    for big, small in [("corpus.max_chars", "corpus.min_chars"), ("search.strength_max", "search.strength_min")]:
        if _get(cfg, big) < _get(cfg, small):
            return f"{big}={_get(cfg, big)!r}: must be at least {small} ({_get(cfg, small)!r})"
    if cfg.proxy.hidden_size % cfg.proxy.num_heads:
        return (f"proxy.hidden_size={cfg.proxy.hidden_size}: must be divisible by proxy.num_heads "
                f"({cfg.proxy.num_heads})")
    return None


def _target(cfg: Config) -> str | None:
    t = cfg.target
    if t.weights and len(t.weights) != len(t.paths) + len(t.tasks):
        return (f"target.weights={t.weights!r}: {len(t.weights)} weights for {len(t.paths)} target.paths "
                f"and {len(t.tasks)} target.tasks")
    if len(t.num_fewshot) > 1 and len(t.num_fewshot) != len(t.tasks) or any(n < 0 for n in t.num_fewshot):
        return (f"target.num_fewshot={t.num_fewshot!r}: one count >= 0, or one for each of the {len(t.tasks)} "
                "target.tasks")
    if any(not math.isfinite(w) or w < 0 for w in t.weights) or (t.weights and max(t.weights) <= 0):
        return f"target.weights={t.weights!r}: must be finite and >= 0 with a positive sum"
    return None


def _proxy(cfg: Config) -> str | None:
    p = cfg.proxy
    if p.init == "pretrained" and not p.init_from:
        return "proxy.init='pretrained': set proxy.init_from to the causal LM to continue (a folder or hub name)"
    if p.init == "scratch" and p.init_from:
        return (f"proxy.init_from={p.init_from!r}: proxy.init is 'scratch'; set proxy.init=pretrained to continue "
                "this model, or clear proxy.init_from")
    if p.init == "pretrained" and p.command:
        return ("proxy.init='pretrained': applies to the built-in proxy, and proxy.command is set (your trainer "
                "loads its own model); set proxy.init=scratch")
    if p.init == "pretrained" and cfg.tokens.tokenizer == "bpe":
        return (f"tokens.tokenizer='bpe': a pretrained proxy reads the run's token ids, so they must come from its "
                f"own tokenizer: set tokens.tokenizer={p.init_from!r}")
    if p.data_prefix and not p.command:
        return f"proxy.data_prefix={p.data_prefix!r}: only used by proxy.command, which is not set"
    return None


def _corpus(cfg: Config) -> str | None:
    c = cfg.corpus
    if c.token_ids_field and not c.label_field:
        return (f"corpus.token_ids_field={c.token_ids_field!r}: token-ID corpora are not embedded, so they need "
                "their clusters given: set corpus.label_field")
    if c.token_ids_field and cfg.tokens.tokenizer == "bpe":
        return (f"corpus.token_ids_field={c.token_ids_field!r}: set tokens.tokenizer to the tokenizer the IDs were "
                "made with (a path or name), not 'bpe'")
    if c.label_field and c.label_field in (c.text_field if not c.token_ids_field else c.token_ids_field, c.id_field):
        return f"corpus.label_field={c.label_field!r}: the same field as the document's text or id"
    return None


ACROSS = (_sizes, _target, _proxy, _corpus)


def _get(cfg: Config, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def validate(cfg: Config) -> Config:
    """Raise ConfigError naming the first wrong field and its value; return cfg when all is fine."""
    from climb_ray.config import ConfigError, settings

    for dotted, (f, _) in settings().items():
        value = _get(cfg, dotted)
        problem = f.metadata["check"](value) if f.metadata.get("check") else None
        if problem:
            raise ConfigError(f"{dotted}={value!r}: {problem}")
    for rule in ACROSS:
        problem = rule(cfg)
        if problem:
            raise ConfigError(problem)
    return cfg
