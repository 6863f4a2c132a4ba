"""One dataclass tree for every setting of a climb_ray run.

Defaults follow the CLIMB paper (arXiv 2504.13161) where the paper gives a value, as listed in
DESIGN.md; `jobs/configs/demo.yaml` shrinks them to run on 2 CPU cores. Load a YAML file and
dotted `key=value` overrides with `climb_ray.config_io.load_config`.
"""

from __future__ import annotations

import math
import re

from dataclasses import dataclass, field


@dataclass
class CorpusConfig:
    paths: list[str] = field(default_factory=list)  # files, folders or globs (local, file://, s3://, gs://)
    format: str = "auto"  # auto (by file extension), jsonl, parquet or text (one .txt file = one document)
    text_field: str = "text"  # JSON key / Parquet column holding the document text
    id_field: str = "id"  # key holding a stable document id; missing or "" -> "<file>:<row>"
    min_chars: int = 1  # rows with fewer non-blank characters are skipped (counted as empty)
    max_chars: int = 200_000  # rows with more characters are skipped (counted as too long)
    max_skip_share: float = 0.5  # the corpus stage stops when one skip reason takes more than this share of the
    # rows (a wrong text_field, format or encoding); 1 = never
    label_field: str = ""  # key / column holding each document's cluster or domain label (ClimbLab, Nemotron-CC
    # style): embedding and clustering are skipped and the labels are the super-clusters; "" = cluster the text
    token_ids_field: str = ""  # column holding each document's token IDs (a list of ints) made with
    # tokens.tokenizer: they go to the token shards as they are (needs label_field); "" = the corpus is text


@dataclass
class EmbedConfig:
    model: str = "all-MiniLM-L6-v2"  # HF encoder name or local path; this name uses the packaged copy
    max_tokens: int = 256  # documents are truncated to this many tokens before encoding
    batch_size: int = 128  # documents per encoder forward pass
    dtype: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU), float32, bfloat16 or float16
    num_actors: int = 0  # encoder actors in the Ray Data pool; 0 = one per GPU, or one per 2 CPUs
    gpus_per_actor: float = 1.0  # GPUs each encoder actor reserves when the cluster has GPUs
    cpus_per_actor: float = 1.0  # CPUs each encoder actor reserves in Ray's accounting (on CPU: less when
    # fewer are free, so that a reader always fits beside the pool)
    threads: int = 0  # torch CPU threads per encoder actor on CPU; 0 = its cpus_per_actor (at least 1)
    chunk_docs: int = 200_000  # documents per resumable chunk (whole files): a killed run redoes one chunk
    trust_remote_code: bool = False  # run the model's own Python code from its folder or hub repo (e.g.
    # stella_en_400M_v5); only for models you trust


@dataclass
class ClusterConfig:
    backend: str = "faiss"  # k-means backend: faiss (CPU), cuml (GPU) or sklearn (reference)
    k_init: int = 1000  # k-means clusters before pruning and merging (paper: 1000)
    fit_sample: int = 1_000_000  # documents sampled to fit k-means; every document is then assigned
    niter: int = 25  # k-means iterations
    quality_scorer: str = "heuristic"  # per-document quality scorer (pluggable by import path)
    prune_threshold: float = 0.5  # clusters whose mean quality score is below this are dropped
    merge_method: str = "ward_kmeans"  # ward_kmeans (Ward on documents, then k-means over the centroids),
    # ward_documents (Ward on documents) or ward_centroid (the paper's: Ward on centroids); docs/merge-benchmark.md
    merge_distance: float = 1.5  # Ward linkage distance at which kept centroids are merged (paper: 1.5)
    n_super_clusters: int = 0  # merge to exactly this many super-clusters instead; 0 = use merge_distance
    report_docs: int = 300  # documents sampled per super-cluster for the report's terms and examples


@dataclass
class TokensConfig:
    tokenizer: str = "bpe"  # "bpe" trains a byte-level BPE on a corpus sample; else an HF tokenizer path/name
    vocab_size: int = 32_000  # vocabulary size of the trained BPE tokenizer
    train_docs: int = 100_000  # documents sampled to train the BPE tokenizer


@dataclass
class ProxyConfig:
    hidden_size: int = 512  # proxy LM width (this shape: 62.6M parameters with 32k ids, the paper's has 62M)
    num_layers: int = 11  # decoder layers
    num_heads: int = 8  # attention heads
    intermediate_size: int = 2048  # MLP width
    context: int = 1024  # training sequence length in tokens
    batch_size: int = 64  # sequences per optimizer step
    steps: int = 1000  # optimizer steps per proxy (tokens = steps * batch_size * context)
    lr: float = 3e-4  # peak AdamW learning rate
    warmup_steps: int = 100  # linear warm-up steps
    schedule: str = "cosine"  # learning-rate schedule after warm-up: cosine or wsd (warmup-stable-decay)
    min_lr_ratio: float = 0.1  # the schedule decays to this fraction of lr
    decay_fraction: float = 0.2  # wsd only: share of the steps spent decaying at the end
    weight_decay: float = 0.1  # AdamW weight decay
    grad_clip: float = 1.0  # gradient-norm clipping
    init: str = "scratch"  # scratch (a new Llama-style model of the shape above) or pretrained (continue
    # proxy.init_from on each mixture, as the paper does; the shape fields are then unused)
    init_from: str = ""  # init pretrained: any transformers causal LM (AutoModelForCausalLM), a folder or hub name;
    # its tokenizer must be the run's (tokens.tokenizer)
    compile: bool = False  # torch.compile the model (pays off on GPUs for long runs)
    threads: int = 0  # torch CPU threads per proxy on CPU; 0 = its cpus_per_trial (at least 1)
    cpus_per_trial: float = 1.0  # CPUs each proxy trial reserves
    gpus_per_trial: float = 1.0  # GPUs each proxy trial reserves when the cluster has GPUs
    command: str = ""  # your trainer instead of the built-in proxy (Megatron-LM, NeMo, torchtitan, a script): a shell
    # command template run for each mixture, with {mixture_json} {blend} {score_file} {trial_dir} {seed} {index}
    # {tokens_dir} {python}; it writes {"score": x} (higher is better) to {score_file}; "" = the built-in proxy
    data_prefix: str = ""  # proxy.command: each super-cluster's data prefix in {blend}, with {name} {index}
    # {tokens_dir} (e.g. /data/megatron/{name}_text_document); "" = the run's token shards, {tokens_dir}/{name}
    command_timeout_s: float = 0.0  # proxy.command: a trial running longer is killed and failed; 0 = no limit

    @property
    def sequences(self) -> int:
        """Sequences one proxy trains on: steps x batch_size."""
        return self.steps * self.batch_size

    @property
    def tokens(self) -> int:
        """Tokens one proxy trains on: steps x batch_size x context (the proxy's token budget)."""
        return self.sequences * self.context

@dataclass
class TargetConfig:
    paths: list[str] = field(default_factory=list)  # target files: held-out text (JSONL/Parquet/txt) or multiple-choice JSONL
    weights: list[float] = field(default_factory=list)  # weight of each target in the score; empty = equal
    text_field: str = "text"  # key / column of the text in text targets
    max_docs: int = 500  # text documents read from each text target at most
    max_doc_tokens: int = 1024  # tokens scored per text document at most
    max_items: int = 2000  # multiple-choice items read from each target at most
    choice_metric: str = "acc_norm"  # acc or acc_norm: the multiple-choice figure that enters the score
    batch_size: int = 32  # sequences per forward pass when scoring


@dataclass
class SearchConfig:
    method: str = "climb"  # climb, random, regmix or optuna
    schedule: list[int] = field(default_factory=lambda: [56, 19, 19, 18])  # proxy runs per iteration: 112 in
    # about 3:1:1:1 (four iterations measured better than the paper's 64, 32, 16, docs/search-benchmark.md)
    temperature: float = 0.5  # prior sharpening p <- p**t for the initial sampler (RegMix)
    strength_min: float = 0.1  # smallest Dirichlet concentration strength of the initial sampler
    strength_max: float = 5.0  # largest concentration strength (15 log-spaced values in between)
    max_epochs: float = 15.0  # a mixture may use a cluster at most this many times over
    min_weight: float = 2e-4  # weights below this are set to 0; weights are rounded to this step
    n_candidates: int = 100_000  # candidate mixtures scored by the predictor at each iteration
    acquisition: str = "ucb"  # how an iteration picks its M mixtures: ucb (the M best by predicted mean + exploration x
    # the ensemble's spread, greedily, one per predicted value; with answer confirmed the last iteration exploits)
    # or paper (M at random from the top max(M**2, top_pool_min) predicted)
    exploration: float = 1.0  # ucb: ensemble standard deviations added to the predicted mean; 0 = exploit only
    local_fraction: float = 0.0  # share of the candidates drawn around the best measured mixtures (measured worse
    # off the pool: docs/search-benchmark.md)
    top_pool_min: int = 128  # acquisition paper: the next M mixtures are drawn from the top max(M**2, this) candidates
    remeasure_fraction: float = 0.25  # answer confirmed: share of each later iteration spent re-measuring the best
    # mixtures with new proxy seeds once a repeat showed the scores to be noisy (one repeat probes it); 0 = never
    answer: str = "confirmed"  # CLIMB's answer: confirmed (the measured mixture with the best estimate: its measured
    # mean, shrunk towards the predictor by the measured noise; the default, see docs/search-benchmark.md), best
    # (best predicted candidate, the paper), topk_mean (mean of the top answer_top_k) or best_seen; regmix always
    # answers with its own rule (top-k mean), random and optuna with the best seen
    answer_top_k: int = 128  # candidates averaged when answer = topk_mean
    max_concurrent_trials: int = 0  # proxy trainings at once; 0 = as many as resources allow
    max_failures: int = 1  # retries of a failing proxy trial before it is recorded as failed


@dataclass
class DoReMiConfig:
    """DoReMi (Xie et al., NeurIPS 2023, arXiv 2305.10429): domain weights learned online by Group DRO."""

    reference: str = "uniform"  # mixture the reference proxy trains on: uniform or prior (token shares); paper: uniform
    step_size: float = 1.0  # eta of the exponentiated-gradient update of the domain weights (paper: 1)
    smoothing: float = 1e-3  # c: weights mixed with uniform as (1 - c) w + c / k after each update (paper: 1e-3)
    steps: int = 0  # optimizer steps of each of the two proxies; 0 = half the search's proxy budget each


@dataclass
class CompareConfig:
    methods: list[str] = field(default_factory=lambda: ["climb", "regmix", "random", "doremi"])  # `climb-ray
    # compare`: the methods run on the same clusters, target and proxy-token budget (climb, regmix, random, optuna, doremi)
    references: list[str] = field(default_factory=lambda: ["uniform", "prior"])  # fixed mixtures evaluated beside them
    seeds: int = 3  # evaluation proxies per mixture, one per seed (seeds 1000, 1001, ...: none the search used)
    search_seeds: int = 1  # searches per method, seeds run seed + 0, 1, ... (0: the run's own); the table's
    # interval is across them (with 1: across the evaluation proxies)
    eval_steps: int = 0  # optimizer steps of each evaluation proxy; 0 = proxy.steps (the search's proxy)


@dataclass
class PredictorConfig:
    learning_rate: float = 0.01  # LightGBM learning rate
    num_rounds: int = 1000  # boosting rounds at most
    max_depth: int = 4  # tree depth
    min_child_samples: int = 5  # minimum data in a leaf (at most a quarter of the results: a few still split)
    reg_alpha: float = 1.0  # L1 regularisation
    reg_lambda: float = 1.0  # L2 regularisation
    valid_fraction: float = 0.1  # share of results held out for early stopping and quality figures
    early_stopping_max: int = 20  # patience = min(this, validation size)
    standardize: bool = True  # fit on z-scored scores: the same fit for scores y and a*y + b (paper: off)
    ensemble: int = 5  # members fitted by K-fold cross-fitting (mean = prediction, spread = uncertainty, out-of-fold
    # quality over all results); 1 = one fit on a random valid_fraction hold-out (the paper)


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # address the HTTP server binds to; loopback unless you mean otherwise
    port: int = 8000  # HTTP port
    route_prefix: str = "/"  # the app's path on the Serve proxy (e.g. /climb behind a shared ingress)
    allowed_hosts: list[str] = field(default_factory=list)  # Host names accepted besides loopback ones on a
    # loopback bind (e.g. a reverse proxy that forwards its own Host header); others get 421
    max_batch: int = 10_000  # most mixtures in one /v1/predict request (larger: 413)
    max_body_bytes: int = 8_000_000  # larger request bodies are refused with 413
    token_env: str = "CLIMB_API_TOKEN"  # environment variable holding the optional bearer token
    num_replicas: int = 1  # predictor replicas behind the HTTP proxy
    cpus_per_replica: float = 1.0  # CPUs each replica reserves
    watch_s: float = 0.0  # `climb-ray serve`: check the predictor file this often and hot-reload it when it changes (0 = never)
    direct_ingress: bool = False  # `climb-ray serve` on a Ray it starts: replicas also answer HTTP on their own port
    # (30000 up, on serve.host; no proxy hop: ~5x the single-mixture calls/s). A cluster: RAY_SERVE_ENABLE_DIRECT_INGRESS=1 at `ray start`


@dataclass
class ExportConfig:
    weights: str = "best"  # best (the search's answer), uniform, prior, 0.5,0.3,..., sc00=0.7,..., JSON or a .json file
    token_budget: int = 0  # tokens in the exported dataset (end-of-text included); 0 = the most the epoch caps allow
    max_epochs: float = 0.0  # passes over a cluster at most; 0 = search.max_epochs (paper: 15)
    seed: int = 0  # which documents fill a partial pass, and the shuffle across clusters
    shard_mb: float = 256.0  # target size of each Parquet shard (text bytes, MiB)
    write_token_ids: bool = False  # also write token-ID shards (tokens-*.bin/.idx) with the run's tokenizer
    format: str = "parquet"  # parquet; hf: + a dataset card; megatron: an indexed dataset per cluster + the blend
    overwrite: bool = False  # replace an export made with other settings (as --overwrite)


@dataclass
class ResourcesConfig:
    num_cpus: int = 0  # CPUs of a Ray started locally on demand; 0 = all (ignored when joining a cluster)
    num_gpus: int = -1  # GPUs of a Ray started locally; -1 = detect (ignored when joining a cluster)
    include_dashboard: bool = True  # start the Ray dashboard with a local Ray
    device: str = "auto"  # GPU work (encoders, proxies): auto = on GPUs present or addable by the autoscaler, gpu, cpu


@dataclass
class Config:
    run_dir: str = "runs/default"  # the run folder: local path or URI (file://, s3://, gs://)
    seed: int = 0  # seed for every random choice of the run
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    target: TargetConfig = field(default_factory=TargetConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    doremi: DoReMiConfig = field(default_factory=DoReMiConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)


# Fields added after runs were made: the value that reproduces what a run made before the field existed did
# (or a function of that run's recorded settings giving it).
# A stage marker without the field reads as this value, so an old run folder stays usable as long as the
# field is set to it (a new default that works differently, as cluster.merge_method, asks for a rebuild).
ADDED_FIELDS = {
    "cluster.merge_method": "ward_documents",
    "proxy.init": lambda old: "pretrained" if old.get("proxy.init_from") else "scratch",  # init_from alone meant it
    "proxy.command": "",
    "proxy.data_prefix": "",
    "export.format": "parquet",
}


class ConfigError(ValueError):
    """A config value is wrong; the message names the field and the value."""


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
    if cfg.target.weights and len(cfg.target.weights) != len(cfg.target.paths):
        raise ConfigError(f"target.weights={cfg.target.weights!r}: {len(cfg.target.weights)} weights for "
                          f"{len(cfg.target.paths)} target.paths")
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
