"""One dataclass tree for every setting of a climb_ray run.

Defaults follow the CLIMB paper (arXiv 2504.13161) where the paper gives a value, as listed in
DESIGN.md; `jobs/configs/demo.yaml` shrinks them to run on 2 CPU cores. Load a YAML file and
dotted `key=value` overrides with `climb_ray.config_io.load_config`.

A field is declared once, with what belongs to it: `setting(default, check, stages)`. The check (from
`climb_ray/config_checks.py`, which also holds the checks across fields) returns None or what is wrong
with a value. The stages are those whose output the field changes, by default its section's `STAGES`:
each stage records their values in its `_DONE` marker (`stages/pipeline.py`), and a changed value asks
for a rebuild. NO_STAGE: no output depends on it (resources, retries, a guard such as
corpus.max_skip_share). Every field is placed, in some stage or in none (a test checks it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from climb_ray.config_checks import (COMMAND_FIELDS, PREFIX_FIELDS, at_least, between, list_of, one_of, open_unit,
                                     positive_list, required, route_path, subset_of, template,
                                     token_sample)

STAGE_ORDER = ("corpus", "embed", "cluster", "tokens", "search", "export")  # the pipeline's stages
# A setting read by a stage changes that stage's output and every later one's
ALL_STAGES, FROM_EMBED, FROM_CLUSTER, FROM_TOKENS, FROM_SEARCH, FROM_EXPORT = (STAGE_ORDER[i:] for i in range(6))
NO_STAGE = ()  # changes no stage's output: where and how the work runs, guards, the server, other commands


def setting(default, check=None, stages=None, *, reanswer=False):
    """A config field with its check (value -> None, or what is wrong with it) and the stages whose output
    depends on it (None: its section's STAGES). reanswer: a change only changes how the search answers from
    its recorded trials (re-answered in seconds, no proxy trained; a section: REANSWER). A list default is
    copied for each config."""
    meta = {"check": check, "stages": stages, "reanswer": reanswer}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class CorpusConfig:
    STAGES: ClassVar = ALL_STAGES  # every stage's output depends on these (not on a guard)
    paths: list[str] = field(default_factory=list)  # files, folders or globs (local, file://, s3://, gs://)
    format: str = setting("auto", one_of("auto", "jsonl", "parquet", "text"))  # auto (by file extension), jsonl,
    # parquet or text (one .txt file = one document)
    text_field: str = "text"  # JSON key / Parquet column holding the document text
    id_field: str = "id"  # key holding a stable document id; missing or "" -> "<file>:<row>"
    min_chars: int = setting(1, at_least(0))  # rows with fewer non-blank characters are skipped (counted as empty)
    max_chars: int = setting(200_000, at_least(1))  # rows with more characters are skipped (counted as too long)
    max_skip_share: float = setting(0.5, between(0, 1), NO_STAGE)  # the corpus stage stops when one skip reason takes
    # more than this share of the rows (a wrong text_field, format or encoding); 1 = never
    label_field: str = ""  # key / column holding each document's cluster or domain label (ClimbLab, Nemotron-CC
    # style): embedding and clustering are skipped and the labels are the super-clusters; "" = cluster the text
    token_ids_field: str = ""  # column holding each document's token IDs (a list of ints) made with
    # tokens.tokenizer: they go to the token shards as they are (needs label_field); "" = the corpus is text


@dataclass
class EmbedConfig:
    STAGES: ClassVar = FROM_EMBED  # the embed stage's output and every later one's
    model: str = "all-MiniLM-L6-v2"  # HF encoder name or local path; this name uses the packaged copy
    encoder: str = setting("transformer", one_of("transformer", "static"))  # transformer (the model itself) or static:
    # model2vec token vectors distilled from the model once and cached, or a model2vec folder; tens of times faster on
    # CPU
    static_fit_docs: int = setting(1000, at_least(0))  # static: documents of the corpus the model embeds once (cached)
    # to fit the token vectors to, which keeps the clusters close to the model's (docs/benchmarks.md); 0 = as distilled
    max_tokens: int = setting(256, at_least(1))  # documents are truncated to this many tokens before encoding
    batch_size: int = setting(128, at_least(1), NO_STAGE)  # documents per encoder forward pass
    dtype: str = setting("auto", one_of("auto", "float32", "bfloat16", "float16"))  # auto (bf16 on CUDA, fp32 on CPU),
    # float32, bfloat16 or float16
    num_actors: int = setting(0, at_least(0), NO_STAGE)  # encoder actors in the Ray Data pool; 0 = one per GPU, or one
    # per 2 CPUs
    gpus_per_actor: float = setting(1.0, at_least(0), NO_STAGE)  # GPUs each encoder actor reserves when the cluster has
    # GPUs
    cpus_per_actor: float = setting(1.0, at_least(0), NO_STAGE)  # CPUs each encoder actor reserves in Ray's accounting
    # (on CPU: less when fewer are free, so that a reader and a writer always fit beside the pool)
    threads: int = setting(0, at_least(0), NO_STAGE)  # torch CPU threads per encoder actor on CPU; 0 = its
    # cpus_per_actor (at least 1)
    chunk_docs: int = setting(200_000, at_least(1), ("embed", "tokens", "search", "export"))  # documents per resumable
    # chunk (whole files): a killed run redoes the chunks not finished
    trust_remote_code: bool = setting(False, stages=NO_STAGE)  # run the model's own Python code from its folder or hub
    # repo (e.g. stella_en_400M_v5); only for models you trust


@dataclass
class ClusterConfig:
    STAGES: ClassVar = FROM_CLUSTER  # the cluster stage's output and every later one's
    backend: str = setting("faiss", one_of("faiss", "cuml", "sklearn"))  # k-means backend: faiss (CPU), cuml (GPU) or
    # sklearn (reference)
    k_init: int = setting(1000, at_least(1))  # k-means clusters before pruning and merging (paper: 1000)
    fit_sample: int = setting(1_000_000, at_least(1))  # documents sampled to fit k-means; every document is then
    # assigned
    niter: int = setting(25, at_least(1))  # k-means iterations
    quality_scorer: str = setting("heuristic", stages=FROM_EMBED)  # per-document quality scorer (pluggable by import
    # path)
    prune_threshold: float = setting(0.5, between(0, 1))  # clusters whose mean quality score is below this are dropped
    merge_method: str = setting("ward_kmeans", one_of("ward_kmeans", "ward_documents", "ward_centroid"))  # ward_kmeans
    # (Ward on documents, then k-means over the centroids), ward_documents (Ward on documents) or ward_centroid (the
    # paper's: Ward on centroids); docs/merge-benchmark.md
    merge_distance: float = setting(1.5, at_least(0))  # Ward linkage distance at which kept centroids are merged
    # (paper: 1.5)
    n_super_clusters: int = setting(0, at_least(0))  # merge to exactly this many super-clusters instead; 0 = use
    # merge_distance
    report_docs: int = setting(300, at_least(1))  # documents sampled per super-cluster for the report's terms and
    # examples


@dataclass
class TokensConfig:
    STAGES: ClassVar = FROM_TOKENS  # the tokens stage's output and every later one's
    tokenizer: str = "bpe"  # "bpe" trains a byte-level BPE on a corpus sample; else an HF tokenizer path/name
    vocab_size: int = setting(32_000, at_least(256))  # vocabulary size of the trained BPE tokenizer
    train_docs: int = setting(100_000, at_least(1))  # documents sampled to train the BPE tokenizer
    sample: str = setting("auto", token_sample)  # what the proxies train on: a seeded sample per cluster of about 2x
    # the largest proxy budget (auto: the search's and compare's evaluation proxies; or a number of tokens), or all


@dataclass
class ProxyConfig:
    STAGES: ClassVar = FROM_SEARCH  # the search stage's output and every later one's
    hidden_size: int = setting(512, at_least(1))  # proxy LM width (this shape: 62.6M parameters with 32k ids, the
    # paper's has 62M)
    num_layers: int = setting(11, at_least(1))  # decoder layers
    num_heads: int = setting(8, at_least(1))  # attention heads
    intermediate_size: int = setting(2048, at_least(1))  # MLP width
    context: int = setting(1024, at_least(2))  # training sequence length in tokens
    batch_size: int = setting(64, at_least(1))  # sequences per optimizer step
    steps: int = setting(1000, at_least(1))  # optimizer steps per proxy (tokens = steps * batch_size * context)
    lr: float = setting(3e-4, at_least(0))  # peak AdamW learning rate
    warmup_steps: int = setting(100, at_least(0))  # linear warm-up steps
    schedule: str = setting("cosine", one_of("cosine", "wsd"))  # learning-rate schedule after warm-up: cosine or wsd
    # (warmup-stable-decay)
    min_lr_ratio: float = setting(0.1, between(0, 1))  # the schedule decays to this fraction of lr
    decay_fraction: float = setting(0.2, between(0, 1))  # wsd only: share of the steps spent decaying at the end
    weight_decay: float = setting(0.1, at_least(0))  # AdamW weight decay
    grad_clip: float = setting(1.0, at_least(0))  # gradient-norm clipping
    init: str = setting("scratch", one_of("scratch", "pretrained"))  # scratch (a new Llama-style model of the shape
    # above) or pretrained (continue proxy.init_from on each mixture, as the paper does; the shape fields are then
    # unused)
    init_from: str = ""  # init pretrained: any transformers causal LM (AutoModelForCausalLM), a folder or hub name;
    # its tokenizer must be the run's (tokens.tokenizer)
    compile: bool = setting(False, stages=NO_STAGE)  # torch.compile the model (pays off on GPUs for long runs)
    threads: int = setting(0, at_least(0), NO_STAGE)  # torch CPU threads per proxy on CPU; 0 = its cpus_per_trial (at
    # least 1)
    cpus_per_trial: float = setting(1.0, at_least(0), NO_STAGE)  # CPUs each proxy trial reserves
    gpus_per_trial: float = setting(1.0, at_least(0), NO_STAGE)  # GPUs each proxy trial reserves when the cluster has
    # GPUs
    command: str = setting("", template(*COMMAND_FIELDS, quoted=True))  # your trainer instead of the built-in proxy
    # (Megatron-LM, NeMo, torchtitan, a script): a shell command template run for each mixture, with {mixture_json}
    # {blend} {score_file} {trial_dir} {seed} {index} {tokens_dir} {python}; it writes {"score": x} (higher is better)
    # to {score_file}; "" = the built-in proxy
    data_prefix: str = setting("", template(*PREFIX_FIELDS))  # proxy.command: each super-cluster's data prefix in
    # {blend}, with {name} {index} {tokens_dir} (e.g. /data/megatron/{name}_text_document); "" = the run's token parts,
    # each cluster's {tokens_dir}/{name}/<part> in turn (its weight split by tokens; mixture.json's data_prefixes: a
    # list per cluster)
    command_timeout_s: float = setting(0.0, at_least(0), NO_STAGE)  # proxy.command: a trial running longer is killed
    # and failed; 0 = no limit

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
    STAGES: ClassVar = FROM_SEARCH  # the search stage's output and every later one's
    paths: list[str] = field(default_factory=list)  # target files: held-out text (JSONL/Parquet/txt) or multiple-choice
    # JSONL
    tasks: list[str] = field(default_factory=list)  # lm-evaluation-harness multiple-choice tasks scored as targets:
    # task names (arc_easy, hellaswag; their data from the local Hugging Face datasets cache) or task YAML paths
    task_dir: str = ""  # a folder of task YAMLs whose tasks target.tasks may name (lm-eval's include_path)
    num_fewshot: list[int] = field(default_factory=list)  # few-shot examples for each task, or one number for all;
    # empty = each task's own default (0 where it sets none)
    weights: list[float] = field(default_factory=list)  # weight of each target in the score, target.paths' first,
    # then target.tasks'; empty = equal
    text_field: str = "text"  # key / column of the text in text targets
    max_docs: int = setting(500, at_least(1))  # text documents read from each text target at most
    max_doc_tokens: int = setting(1024, at_least(1))  # tokens scored per text document at most
    max_items: int = setting(2000, at_least(1))  # multiple-choice items read from each target (or task) at most
    choice_metric: str = setting("acc_norm", one_of("acc", "acc_norm"))  # acc or acc_norm: the multiple-choice figure
    # that enters the score (a task that reports no acc_norm, WinoGrande's, enters with acc)
    batch_size: int = setting(32, at_least(1))  # sequences per forward pass when scoring


@dataclass
class SearchConfig:
    STAGES: ClassVar = FROM_SEARCH  # the search stage's output and every later one's
    method: str = setting("climb", one_of("climb", "random", "regmix", "optuna"))  # climb, random, regmix or optuna
    schedule: list[int] = setting([56, 19, 19, 18], positive_list)  # proxy runs per iteration: 112 in
    # about 3:1:1:1 (four iterations measured better than the paper's 64, 32, 16, docs/search-benchmark.md)
    temperature: float = setting(0.5, at_least(0))  # prior sharpening p <- p**t for the initial sampler (RegMix)
    strength_min: float = setting(0.1, at_least(1e-9))  # smallest Dirichlet concentration strength of the initial
    # sampler
    strength_max: float = 5.0  # largest concentration strength (15 log-spaced values in between)
    max_epochs: float = setting(15.0, at_least(1e-9))  # a mixture may use a cluster at most this many times over
    min_weight: float = setting(2e-4, between(0, 0.5))  # weights below this are set to 0; weights are rounded to this
    # step
    n_candidates: int = setting(100_000, at_least(1))  # candidate mixtures scored by the predictor at each iteration
    acquisition: str = setting("ucb", one_of("ucb", "paper"))  # how an iteration picks its M mixtures: ucb (the M best
    # by predicted mean + exploration x the ensemble's spread, greedily, one per predicted value; with answer confirmed
    # the last iteration exploits) or paper (M at random from the top max(M**2, top_pool_min) predicted)
    exploration: float = setting(1.0, at_least(0))  # ucb: ensemble standard deviations added to the predicted mean; 0 =
    # exploit only
    local_fraction: float = setting(0.0, between(0, 1))  # share of the candidates drawn around the best measured
    # mixtures (measured worse off the pool: docs/search-benchmark.md)
    top_pool_min: int = setting(128, at_least(1))  # acquisition paper: the next M mixtures are drawn from the top
    # max(M**2, this) candidates
    remeasure_fraction: float = setting(0.25, between(0, 1))  # answer confirmed: share of each later iteration spent
    # re-measuring the best mixtures with new proxy seeds once a repeat showed the scores to be noisy (one repeat probes
    # it); 0 = never
    answer: str = setting("confirmed", one_of("confirmed", "best", "topk_mean", "best_seen"), reanswer=True)  # CLIMB's
    # answer: confirmed (the measured mixture with the best estimate: its measured mean, shrunk towards the predictor
    # by the measured noise; the default, see docs/search-benchmark.md), best (best predicted candidate, the paper), topk_mean
    # (mean of the top answer_top_k) or best_seen; regmix always answers with its own rule (top-k mean), random and
    # optuna with the best seen
    answer_top_k: int = setting(128, at_least(1), reanswer=True)  # candidates averaged when answer = topk_mean
    max_concurrent_trials: int = setting(0, at_least(0), NO_STAGE)  # proxy trainings at once; 0 = as many as resources
    # allow
    max_failures: int = setting(1, at_least(0), NO_STAGE)  # retries of a failing proxy trial before it is recorded as
    # failed


@dataclass
class DoReMiConfig:
    """DoReMi (Xie et al., NeurIPS 2023, arXiv 2305.10429): domain weights learned online by Group DRO."""

    STAGES: ClassVar = NO_STAGE  # no stage's output
    reference: str = setting("uniform", one_of("uniform", "prior"))  # mixture the reference proxy trains on: uniform or
    # prior (token shares); paper: uniform
    step_size: float = setting(1.0, at_least(0))  # eta of the exponentiated-gradient update of the domain weights
    # (paper: 1)
    smoothing: float = setting(1e-3, between(0, 1))  # c: weights mixed with uniform as (1 - c) w + c / k after each
    # update (paper: 1e-3)
    steps: int = setting(0, at_least(0))  # optimizer steps of each of the two proxies; 0 = half the search's proxy
    # budget each


COMPARED = ("climb", "regmix", "random", "optuna", "doremi")  # the methods `climb-ray compare` can run


@dataclass
class CompareConfig:
    STAGES: ClassVar = NO_STAGE  # no stage's output
    methods: list[str] = setting(["climb", "regmix", "random", "doremi"], list_of(*COMPARED))  # `climb-ray compare`:
    # the methods run on the same clusters, target and proxy-token budget
    references: list[str] = setting(["uniform", "prior"], subset_of("uniform", "prior"))  # fixed mixtures evaluated
    # beside them
    seeds: int = setting(3, at_least(1))  # evaluation proxies per mixture, one per seed (seeds 1000, 1001, ...: none
    # the search used)
    search_seeds: int = setting(1, at_least(1))  # searches per method, seeds run seed + 0, 1, ... (0: the run's own);
    # the table's interval is across them (with 1: across the evaluation proxies)
    eval_steps: int = setting(0, at_least(0))  # optimizer steps of each evaluation proxy; 0 = proxy.steps (the search's
    # proxy)


@dataclass
class PredictorConfig:
    STAGES: ClassVar = FROM_SEARCH  # the search stage's output and every later one's
    REANSWER: ClassVar = True  # a change re-answers from the recorded trials (setting's reanswer)
    learning_rate: float = setting(0.01, at_least(1e-9))  # LightGBM learning rate
    num_rounds: int = setting(1000, at_least(1))  # boosting rounds at most
    max_depth: int = setting(4, at_least(1))  # tree depth
    min_child_samples: int = setting(5, at_least(1))  # minimum data in a leaf (at most a quarter of the results: a few
    # still split)
    reg_alpha: float = setting(1.0, at_least(0))  # L1 regularisation
    reg_lambda: float = setting(1.0, at_least(0))  # L2 regularisation
    valid_fraction: float = setting(0.1, open_unit)  # share of results held out for early stopping and quality figures
    early_stopping_max: int = setting(20, at_least(1))  # patience = min(this, validation size)
    standardize: bool = True  # fit on z-scored scores: the same fit for scores y and a*y + b (paper: off)
    ensemble: int = setting(5, at_least(1))  # members fitted by K-fold cross-fitting (mean = prediction, spread =
    # uncertainty, out-of-fold quality over all results); 1 = one fit on a random valid_fraction hold-out (the paper)


@dataclass
class ServeConfig:
    STAGES: ClassVar = NO_STAGE  # no stage's output
    host: str = "127.0.0.1"  # address the HTTP server binds to; loopback unless you mean otherwise
    port: int = setting(8000, between(1, 65535))  # HTTP port
    route_prefix: str = setting("/", route_path)  # the app's path on the Serve proxy (e.g. /climb behind a shared
    # ingress)
    allowed_hosts: list[str] = field(default_factory=list)  # Host names accepted besides loopback ones on a
    # loopback bind (e.g. a reverse proxy that forwards its own Host header); others get 421
    max_batch: int = setting(10_000, at_least(1))  # most mixtures in one /v1/predict request (larger: 413)
    max_body_bytes: int = setting(8_000_000, at_least(1))  # larger request bodies are refused with 413
    token_env: str = "CLIMB_API_TOKEN"  # environment variable holding the optional bearer token
    num_replicas: int = setting(1, at_least(1))  # predictor replicas behind the HTTP proxy
    cpus_per_replica: float = setting(1.0, at_least(0))  # CPUs each replica reserves
    watch_s: float = setting(0.0, at_least(0))  # `climb-ray serve`: check the predictor file this often and hot-reload
    # it when it changes (0 = never)
    direct_ingress: bool = False  # `climb-ray serve` on a Ray it starts: replicas also answer HTTP on their own port
    # (30000 up, on serve.host; no proxy hop: ~5x the single-mixture calls/s). A cluster: RAY_SERVE_ENABLE_DIRECT_INGRESS=1 at `ray start`
    access_log: bool = False  # replicas log a line per request (Ray Serve's access log) and Serve's info lines; off:
    # warnings and errors only, ~0.3-0.5 ms less CPU per call on 2 cores (docs/benchmarks.md)


@dataclass
class ExportConfig:
    STAGES: ClassVar = FROM_EXPORT  # the export stage's output
    weights: str = "best"  # best (the search's answer), uniform, prior, 0.5,0.3,..., sc00=0.7,..., JSON or a .json file
    token_budget: int = setting(0, at_least(0))  # tokens in the exported dataset (end-of-text included); 0 = the most
    # the epoch caps allow
    max_epochs: float = setting(0.0, at_least(0))  # passes over a cluster at most; 0 = search.max_epochs (paper: 15)
    seed: int = setting(0, at_least(0))  # which documents fill a partial pass, and the shuffle across clusters
    shard_mb: float = setting(256.0, at_least(0.001))  # target size of each Parquet shard (text bytes, MiB)
    write_token_ids: bool = False  # also write token-ID shards (tokens-*.bin/.idx) with the run's tokenizer
    format: str = setting("parquet", one_of("parquet", "hf", "megatron"))  # parquet; hf: + a dataset card; megatron: an
    # indexed dataset per cluster + the blend
    overwrite: bool = setting(False, stages=NO_STAGE)  # replace an export made with other settings (as --overwrite)


@dataclass
class TrackingConfig:
    """Experiment tracking through Ray Tune's logger callbacks (the `tracking` extra): a run per proxy with its
    mixture, loss curve and score, and a `search` run with the predictor's quality per iteration."""

    STAGES: ClassVar = NO_STAGE  # no stage's output

    mlflow_uri: str = ""  # MLflow tracking URI (file:///abs/mlruns or a folder, sqlite:///mlflow.db, http://host:5000,
    # databricks); "" = off
    mlflow_experiment: str = ""  # MLflow experiment name (not W&B's group); "" = the run folder's name
    wandb_project: str = ""  # Weights & Biases project (log in with `wandb login` or WANDB_API_KEY); "" = off
    tensorboard: bool = False  # loss curves in the TensorBoard event files of the Tune trial folders (Tune writes
    # each trial's final result there anyway)
    log_every_steps: int = setting(10, at_least(0))  # with tracking on, each proxy reports its train loss every this
    # many steps; 0 = only the final result


@dataclass
class ResourcesConfig:
    STAGES: ClassVar = NO_STAGE  # no stage's output
    num_cpus: int = setting(0, at_least(0))  # CPUs of a Ray started locally on demand; 0 = all (ignored when joining a
    # cluster)
    num_gpus: int = setting(-1, at_least(-1))  # GPUs of a Ray started locally; -1 = detect (ignored when joining a
    # cluster)
    include_dashboard: bool = True  # start the Ray dashboard with a local Ray
    device: str = setting("auto", one_of("auto", "gpu", "cpu"))  # GPU work (encoders, proxies): auto = on GPUs present
    # or addable by the autoscaler, gpu, cpu


@dataclass
class Config:
    run_dir: str = setting("runs/default", required("a run folder is needed"), NO_STAGE)  # the run folder: local path
    # or URI (file://, s3://, gs://)
    seed: int = setting(0, at_least(0, "numpy seeds are non-negative"), FROM_CLUSTER)  # seed for every random choice of
    # the run
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
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# the sections of Config by name (corpus: CorpusConfig, ...)
SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config)
            if dataclasses.is_dataclass(f.default_factory)}


def settings() -> dict[str, tuple[dataclasses.Field, tuple[str, ...] | None]]:
    """Every setting by dotted name (seed, corpus.paths, ...): its field and the stages whose output depends on
    it (its own, else its section's; None: not placed)."""
    out = {}
    for f in dataclasses.fields(Config):
        section = SECTIONS.get(f.name)
        for g in dataclasses.fields(section) if section else [f]:
            stages = g.metadata.get("stages")
            out[f"{f.name}.{g.name}" if section else f.name] = (
                g, getattr(section, "STAGES", None) if stages is None else stages)
    return out


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
    "embed.encoder": "transformer",
    "embed.static_fit_docs": 0,
    "target.tasks": [],
    "target.task_dir": "",
    "target.num_fewshot": [],
    "tokens.sample": "all",  # before it, every document was tokenized
}


class ConfigError(ValueError):
    """A config value is wrong; the message names the field and the value."""
