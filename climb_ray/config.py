"""One dataclass tree for every setting of a climb_ray run.

Defaults follow the CLIMB paper (arXiv 2504.13161) where the paper gives a value, as listed in
DESIGN.md; `jobs/configs/demo.yaml` shrinks them to run on 2 CPU cores. Load a YAML file and
dotted `key=value` overrides with `climb_ray.config_io.load_config`; each value's check is in
`climb_ray/config_checks.py`.
"""

from __future__ import annotations

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
    encoder: str = "transformer"  # transformer (the model itself) or static: model2vec token vectors distilled
    # from the model once and cached, or a model2vec folder; tens of times faster on CPU, coarser clusters
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
    sample: str = "auto"  # what the proxies train on: a seeded sample per cluster of about 2x the largest proxy
    # budget (auto: the search's and compare's evaluation proxies; or a number of tokens), or all (every document)


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
    # {tokens_dir} (e.g. /data/megatron/{name}_text_document); "" = the run's token parts, each cluster's
    # {tokens_dir}/{name}/<part> in turn (its weight split by tokens; mixture.json's data_prefixes: a list per cluster)
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
    tasks: list[str] = field(default_factory=list)  # lm-evaluation-harness multiple-choice tasks scored as targets:
    # task names (arc_easy, hellaswag; their data from the local Hugging Face datasets cache) or task YAML paths
    task_dir: str = ""  # a folder of task YAMLs whose tasks target.tasks may name (lm-eval's include_path)
    num_fewshot: list[int] = field(default_factory=list)  # few-shot examples for each task, or one number for all;
    # empty = each task's own default (0 where it sets none)
    weights: list[float] = field(default_factory=list)  # weight of each target in the score, target.paths' first,
    # then target.tasks'; empty = equal
    text_field: str = "text"  # key / column of the text in text targets
    max_docs: int = 500  # text documents read from each text target at most
    max_doc_tokens: int = 1024  # tokens scored per text document at most
    max_items: int = 2000  # multiple-choice items read from each target (or task) at most
    choice_metric: str = "acc_norm"  # acc or acc_norm: the multiple-choice figure that enters the score (a task
    # that reports no acc_norm, WinoGrande's, enters with acc)
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
    access_log: bool = False  # replicas log a line per request (Ray Serve's access log) and Serve's info lines; off:
    # warnings and errors only, ~0.3-0.5 ms less CPU per call on 2 cores (docs/benchmarks.md)


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
class TrackingConfig:
    """Experiment tracking through Ray Tune's logger callbacks (the `tracking` extra): a run per proxy with its
    mixture, loss curve and score, and a `search` run with the predictor's quality per iteration."""

    mlflow_uri: str = ""  # MLflow tracking URI (file:///abs/mlruns or a folder, sqlite:///mlflow.db, http://host:5000,
    # databricks); "" = off
    mlflow_experiment: str = ""  # MLflow experiment name (not W&B's group); "" = the run folder's name
    wandb_project: str = ""  # Weights & Biases project (log in with `wandb login` or WANDB_API_KEY); "" = off
    tensorboard: bool = False  # loss curves in the TensorBoard event files of the Tune trial folders (Tune writes
    # each trial's final result there anyway)
    log_every_steps: int = 10  # with tracking on, each proxy reports its train loss every this many steps; 0 = only
    # the final result


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
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


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
    "target.tasks": [],
    "target.task_dir": "",
    "target.num_fewshot": [],
    "tokens.sample": "all",  # before it, every document was tokenized
}


class ConfigError(ValueError):
    """A config value is wrong; the message names the field and the value."""
