"""The `spec` of an InferenceBackend: what a model owner writes.

These models are the single source of the CRD's schema (see `turnout.api.crd`). Field names are
snake_case in Python and camelCase in Kubernetes (the alias). Descriptions become the CRD's
documentation, so they are written for the person running `kubectl explain`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    StringConstraints,
    ValidatorFunctionWrapHandler,
)
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

# Kubernetes quantities ("8", "500m", "64Gi", "1.5G"): checked here so a typo is an InvalidSpec,
# not a Deployment the API server refuses half-way through a cutover. Unsigned: nothing here is negative.
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)]
# Service names are RFC 1035 labels (a leading letter), stricter than other object names.
DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DnsSubdomain = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
# Label and annotation keys: an optional DNS-subdomain prefix and a name of at most 63 characters.
QUALIFIED_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
QualifiedName = Annotated[str, StringConstraints(pattern=QUALIFIED_NAME_PATTERN, max_length=317)]
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LabelValue = Annotated[str, StringConstraints(pattern=LABEL_VALUE_PATTERN, max_length=63)]
# Unicode's White_Space, spelled so that both layers' regex engines read it alike: pydantic's (Rust's
# regex) and the API server's (RE2), whose `\s` differ (RE2's is ASCII only, without even \v).
WHITESPACE_CLASS = r"\t-\r\x85\p{Z}"
# The same characters, for checks written in Python (a unit test compares them with unicodedata).
WHITESPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
NO_SPACE_PATTERN = r"^[^" + WHITESPACE_CLASS + r"\x00]+$"
# vLLM reads a model that starts with '-' as a flag, so neither engine gets one.
MODEL_PATTERN = r"^[^" + WHITESPACE_CLASS + r"\x00-][^" + WHITESPACE_CLASS + r"\x00]*$"
SERVED_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
MOUNT_PATH_PATTERN = r"^(/[A-Za-z0-9._-]+)+/?$"
# Keys of a Secret's or a ConfigMap's data.
DATA_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# Ollama's OLLAMA_KEEP_ALIVE: a Go duration, plain seconds, or a negative number for "forever".
KEEP_ALIVE_PATTERN = r"^(-1|[0-9]+|([0-9]+(ns|us|ms|s|m|h))+)$"
METRIC_NAME_PATTERN = r"^[A-Za-z][-A-Za-z0-9_]*$"
# A Prometheus server's base URL: its HTTP API is under `<address>/api/v1/`.
PROMETHEUS_ADDRESS_PATTERN = r"^https?://[^\s/?#@]+(/[^\s?#]*)?$"
QUERY_VARIABLES = (
    "namespace",
    "backend",
    "service",
    "canaryRevision",
    "stableRevision",
    "canaryColor",
    "stableColor",
    "interval",
    "window",
)
"""What turnout fills in a Prometheus query, written `{{ name }}` (docs/canary.md says what each is)."""
# A PromQL query whose every `{{` opens one of QUERY_VARIABLES (PromQL itself never writes `{{`).
PROMQL_PATTERN = r"^([^{]|\{[^{]|\{\{ *(" + "|".join(QUERY_VARIABLES) + r") *\}\})*\{?$"

# What a valid value looks like, for each pattern: users read this instead of the regex, in
# `kubectl apply` errors (the CRD turns each pattern into a CEL rule with this message) and in
# the InvalidSpec condition alike.
PATTERN_HINTS: dict[str, str] = {
    QUANTITY_PATTERN: "must be a Kubernetes quantity such as 8, 500m or 64Gi",
    DNS_LABEL_PATTERN: (
        "must be a Service name such as chat-v2: lowercase letters, digits and '-', starting with a letter"
    ),
    DNS_SUBDOMAIN_PATTERN: (
        "must be a Kubernetes object name such as models or vllm-key: lowercase letters, digits, '-' and '.'"
    ),
    QUALIFIED_NAME_PATTERN: (
        "must be a label key such as team or example.com/team: letters, digits, '-', '_' and '.', "
        "at most 63 characters after an optional DNS prefix and '/'"
    ),
    LABEL_VALUE_PATTERN: (
        "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    ),
    NO_SPACE_PATTERN: "must not be empty or contain whitespace",
    MODEL_PATTERN: (
        "must be a model such as org/model, /data/models/m or llama3:8b: no whitespace, not starting with '-'"
    ),
    SERVED_NAME_PATTERN: (
        "must be a model name such as chat or org/model:v1: letters, digits and '.', '_', ':', '/', '-', "
        "starting with a letter or digit"
    ),
    MOUNT_PATH_PATTERN: "must be an absolute directory path such as /data/models",
    DATA_KEY_PATTERN: "must be a data key such as token or prompts.jsonl: letters, digits, '-', '_' and '.'",
    KEEP_ALIVE_PATTERN: "must be a duration such as 30m or 24h, a number of seconds, or -1 to keep models loaded",
    METRIC_NAME_PATTERN: (
        "must be a metric name such as error-rate: letters, digits, '-' and '_', starting with a letter"
    ),
    PROMETHEUS_ADDRESS_PATTERN: (
        "must be a Prometheus server's URL such as http://prometheus.monitoring:9090: http or https, "
        "a host, an optional path, no query, fragment or credentials"
    ),
    PROMQL_PATTERN: (
        "must be a PromQL query whose only {{ }} are turnout's variables: "
        + ", ".join(f"{{{{ {name} }}}}" for name in QUERY_VARIABLES)
    ),
}


ModelName = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=MODEL_PATTERN)]


class Model(BaseModel):
    """Base of every spec model: camelCase aliases, unknown fields rejected, values immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


class Engine(StrEnum):
    """The inference engine that serves the model."""

    VLLM = "vllm"
    OLLAMA = "ollama"


class Task(StrEnum):
    """What the model is asked for: chat completions, or embedding vectors."""

    CHAT = "chat"
    EMBEDDING = "embedding"


class AccessMode(StrEnum):
    """How the model volume can be mounted: by one node, or by many nodes at once."""

    READ_WRITE_ONCE = "ReadWriteOnce"
    READ_ONLY_MANY = "ReadOnlyMany"
    READ_WRITE_MANY = "ReadWriteMany"
    READ_WRITE_ONCE_POD = "ReadWriteOncePod"


class Dtype(StrEnum):
    """vLLM's `--dtype`: the data type of weights and activations."""

    AUTO = "auto"
    HALF = "half"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT = "float"
    FLOAT32 = "float32"


class ServiceType(StrEnum):
    """How the stable Service is exposed."""

    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class Strategy(StrEnum):
    """How a new revision replaces the running one."""

    BLUE_GREEN = "BlueGreen"
    RECREATE = "Recreate"
    CANARY = "Canary"


class Storage(Model):
    """The volume that holds model weights (vLLM) or pulled models (Ollama), shared by both colors."""

    claim_name: DnsSubdomain | None = None
    """PersistentVolumeClaim to mount. Default: `<backend name>-models`."""
    create: bool = False
    """Create the claim if it does not exist. turnout never deletes a claim it created unless
    `deleteClaimOnDelete` is true."""
    delete_claim_on_delete: bool = False
    """Delete the claim turnout created when the backend is deleted (weights are lost). Read when
    turnout creates the claim: a claim that already exists keeps what it was created with."""
    size: Quantity = "100Gi"
    """Requested size when turnout creates the claim."""
    access_modes: list[AccessMode] = Field(
        default_factory=lambda: [AccessMode.READ_WRITE_MANY], min_length=1, max_length=4
    )
    """Access modes when turnout creates the claim. Blue/green runs two colors at once, so a
    claim shared across nodes needs ReadWriteMany (or ReadOnlyMany for pre-loaded weights)."""
    storage_class_name: DnsSubdomain | None = None
    """Storage class when turnout creates the claim. Default: the cluster's default class."""
    mount_path: Annotated[str, StringConstraints(pattern=MOUNT_PATH_PATTERN, max_length=256)] = "/data/models"
    """Where the volume is mounted in the engine's container."""


class Architecture(Model):
    """Size facts of the model, from its `config.json` (on Hugging Face: the model's "Files and
    versions" tab). turnout estimates from them, before any pod is created, whether the weights and
    the KV cache of one `maxModelLen` sequence fit in the GPUs' memory. Declared here, they win over
    what turnout reads from the model claim. Leave unset for quantized checkpoints (AWQ, GPTQ, FP8:
    `quantization_config` in config.json): declared facts assume 16-bit weights, while the files on a
    claim give the checkpoint's own size."""

    parameters: Annotated[int, Field(ge=1, le=100_000_000_000_000)]
    """Parameter count, e.g. 8030261248 for Llama-3.1-8B: the model card's "Model size", or
    `metadata.total_size` (bytes) in `model.safetensors.index.json` divided by 2 for 16-bit weights."""
    layers: Annotated[int, Field(ge=1, le=10_000)]
    """Transformer layers: `num_hidden_layers` in config.json (32 for Llama-3.1-8B)."""
    kv_heads: Annotated[int, Field(ge=1, le=10_000)]
    """Key/value heads: `num_key_value_heads` in config.json (8 for Llama-3.1-8B); without it, as many
    as `num_attention_heads`."""
    head_dim: Annotated[int, Field(ge=1, le=100_000)]
    """Size of one attention head: `head_dim` in config.json, else `hidden_size` divided by
    `num_attention_heads` (4096 / 32 = 128 for Llama-3.1-8B)."""
    vocab_size: Annotated[int, Field(ge=1, le=100_000_000)] | None = None
    """Vocabulary: `vocab_size` in config.json (128256 for Llama-3.1-8B). vLLM's sampler warms up at
    start on `--max-num-seqs` (from `vllm.extraArgs`; else vLLM's default, 256, or 1024 on GPUs of 70
    GiB or more but A100s) rows of logits this wide, about 22 bytes each; the estimate counts that
    when it is more than its fixed activation allowance. Default: 32000 (the smallest common)."""


class ModelSource(Model):
    """Which model to serve and under which name."""

    name: ModelName
    """vLLM: a path on the model volume or a Hugging Face hub id (cached on the volume).
    Ollama: a model tag such as `llama3:8b` (no tag means `:latest`). `vllm.model` and
    `ollama.model` override it per engine, so that switching `engine` is one setting."""
    served_name: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=SERVED_NAME_PATTERN)] | None = (
        None
    )
    """The model name clients send, the same on both engines. Default: the backend's name."""
    task: Task = Task.CHAT
    """What clients ask the model for. `chat` (chat and text completions; vision-language models
    such as `llava:7b` are chat models too) or `embedding` (vectors, e.g. `nomic-embed-text`:
    vLLM runs its pooling runner with `--runner pooling --convert embed`, Ollama needs nothing
    more). turnout's checks ask for what the task serves: an embedding backend's pods must answer
    `POST /v1/embeddings` (vLLM) or `POST /api/embed` (Ollama) with a vector, whose length is
    recorded per revision in `status.servedModels` and must stay the same across a cutover
    (see `rollout.allowDimensionChange`). Default: chat."""
    storage: Storage | None = None
    """The shared model volume. Without it each pod gets an empty scratch volume and downloads
    the model again on every start."""
    architecture: Architecture | None = None
    """Size facts from the model's config.json, for vLLM: with them, a revision that cannot fit in
    the GPUs' memory fails at once (InsufficientGPUMemory, with a maxModelLen or tensorParallelSize
    that would fit) instead of holding GPUs until vLLM crashes. Unset with a model claim
    (`storage`): turnout reads the model's config.json and the size of its weights from the claim,
    once per revision, with a short-lived pod that mounts it read-only (`status.modelFiles` says what
    it found; files not downloaded yet leave the estimate unsure). Unset without a claim: no estimate.
    Changing it never starts a cutover."""


class Resources(Model):
    """Per-replica compute. GPUs are `nvidia.com/gpu`."""

    gpus: Annotated[int, Field(ge=0, le=64)] | None = None
    """GPUs per replica. Default: 1 for vLLM, 0 for Ollama."""
    cpu: Quantity | None = None
    """CPU request and limit, e.g. `8` or `500m`."""
    memory: Quantity | None = None
    """Memory request and limit, e.g. `64Gi`."""
    gpu_memory: Quantity | None = None
    """Memory of one GPU, e.g. `24Gi`, for the GPU memory estimate (see `model.architecture`). Unset:
    read from the `nvidia.com/gpu.memory` label (MiB) that NVIDIA GPU feature discovery puts on the
    nodes the pods can land on. Changing it never starts a cutover."""


class SecretKeyRef(Model):
    """A key in a Secret in the backend's namespace."""

    name: DnsSubdomain
    """Name of the Secret."""
    key: Annotated[str, StringConstraints(pattern=DATA_KEY_PATTERN, max_length=253)]
    """Key in the Secret's data whose value is used."""


class EngineOptions(Model):
    """Base of an engine's section of the spec (`spec.vllm`, `spec.ollama`), read through its profile."""

    model: ModelName | None = None
    """The model this engine serves, instead of `model.name`, so that switching `engine` is one setting."""


def _extra_arg_fits(word: str) -> str:
    """An extra argument turnout can pass: not a flag turnout owns, not a flag and its value in one item.

    Checked whichever engine runs, like the CRD's rules on the items, so a switch of engine cannot
    fail on them. vLLM's module knows its flags; it imports this module, so it is imported late.
    """
    from turnout.engines import vllm

    problem = vllm.owned_flag_problem(word)
    if problem is None and vllm.splits_a_flag(word):
        problem = vllm.ONE_ARGV_WORD
    if problem is not None:
        raise PydanticCustomError("vllm_extra_arg", problem)
    return word


def _no_flag_twice(words: list[str]) -> list[str]:
    from turnout.engines import vllm

    repeated = vllm.repeated_flags(words)
    if repeated:
        raise PydanticCustomError("vllm_repeated_flag", vllm.REPEATED_FLAG_GOT.format(", ".join(repeated)))
    return words


class Vllm(EngineOptions):
    """vLLM options. turnout owns the flags it sets from these fields, `model` and `template.drain`
    (`--model`, `--served-model-name`, `--tensor-parallel-size`, `--shutdown-timeout`, ...), those
    that would move vLLM off plain HTTP on port 8000 (`--host`, `--port`, `--uds`, `--headless`,
    `--grpc`, `--ssl-*`), and `--config`; everything else can go in `extraArgs`."""

    model: ModelName | None = None
    """The model vLLM serves (a path on the model volume or a hub id), instead of `model.name`."""

    tensor_parallel_size: Annotated[int, Field(ge=1, le=64)] | None = None
    """`--tensor-parallel-size`. Must divide `resources.gpus`. Default: all GPUs of the replica."""
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    """`--gpu-memory-utilization`, the fraction of each GPU's memory vLLM may use, in (0, 1]."""
    max_model_len: Annotated[int, Field(ge=16, le=10_485_760)] = 8192
    """`--max-model-len`, the context length in tokens."""
    dtype: Dtype = Dtype.AUTO
    """`--dtype` of the weights and activations."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret holding the API key clients must send as a Bearer token on `/v1/*`. Passed to vLLM
    as the `VLLM_API_KEY` environment variable, never as an argument."""
    extra_args: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=4096), AfterValidator(_extra_arg_fits)]],
        AfterValidator(_no_flag_twice),
    ] = Field(default_factory=list, max_length=128)
    """More `vllm serve` arguments, each list item one argv word, e.g.
    `["--enable-prefix-caching", "--max-num-seqs=64"]`. Flags turnout owns are refused in every
    spelling vLLM reads as them (`--max_model_len`, `--max-mod`), and so is a flag given twice."""


class Ollama(EngineOptions):
    """Ollama options, passed as environment variables."""

    model: ModelName | None = None
    """The Ollama model Ollama serves (e.g. `llama3.1:8b`), instead of `model.name`."""

    keep_alive: Annotated[str, StringConstraints(pattern=KEEP_ALIVE_PATTERN, max_length=32)] = "24h"
    """`OLLAMA_KEEP_ALIVE`: how long a model stays loaded after a request (`-1` forever)."""
    num_parallel: Annotated[int, Field(ge=1, le=512)] = 4
    """`OLLAMA_NUM_PARALLEL`: requests served at once per model."""
    context_length: Annotated[int, Field(ge=256, le=10_485_760)] | None = None
    """`OLLAMA_CONTEXT_LENGTH` in tokens. Default: Ollama's own."""


class ServiceSpec(Model):
    """The stable Service clients use; it never changes during a cutover."""

    name: DnsLabel | None = None
    """Service name. Default: the backend's name."""
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    """Port clients connect to; it forwards to the engine's port (vLLM 8000, Ollama 11434)."""
    type: ServiceType = ServiceType.CLUSTER_IP
    """ClusterIP (inside the cluster), NodePort or LoadBalancer."""


class Checks(Model):
    """turnout's own engine-aware checks of each new pod, before and after the switch."""

    interval_seconds: Annotated[int, Field(ge=1, le=300)] = 5
    """Seconds between two rounds of checks."""
    timeout_seconds: Annotated[int, Field(ge=1, le=120)] = 3
    """Seconds one check may take; a timeout counts as a failure."""
    success_threshold: Annotated[int, Field(ge=1, le=100)] = 3
    """Passing rounds in a row before the new revision is proven."""
    failure_threshold: Annotated[int, Field(ge=1, le=100)] = 3
    """Failing rounds in a row before the new revision is rolled back (or, once it serves, declared
    Degraded)."""
    healthy_interval_seconds: Annotated[int, Field(ge=5, le=3600)] = 60
    """Seconds between two rounds of checks of the serving revision once its bake is over. After a
    failing round, rounds are `intervalSeconds` apart until the counters decide."""
    smoke_request: bool = True
    """Also send one tiny chat completion (`max_tokens: 1`) with the served name. An embedding
    backend (`model.task: embedding`) is always sent one tiny embedding request instead, whatever
    this says: its answer is the vector whose length (dimension) is compared across a cutover."""


class CanaryPause(Model):
    """Wait at the weight in effect; the analysis keeps judging meanwhile."""

    seconds: Annotated[int, Field(ge=1, le=86_400)] | None = None
    """Seconds to wait. Unset: wait until promoted with `kubectl turnout promote NAME` (it sets
    `turnout.dev/promote=<status.previewRevision>/<step>`)."""


class CanaryStep(Model):
    """One step of a canary: either `setWeight` or `pause`."""

    set_weight: Annotated[int, Field(ge=0, le=100)] | None = None
    """Percent of the traffic the new revision takes from this step on."""
    pause: CanaryPause | None = None
    """Wait here, for `seconds` or until promoted."""


class PrometheusQuery(Model):
    """An instant query to a Prometheus server's HTTP API (`GET <address>/api/v1/query`)."""

    address: Annotated[str, StringConstraints(pattern=PROMETHEUS_ADDRESS_PATTERN, max_length=2048)]
    """The server's base URL, e.g. `http://prometheus.monitoring:9090`; no credentials are sent."""
    query: Annotated[str, StringConstraints(min_length=1, max_length=4096, pattern=PROMQL_PATTERN)]
    """PromQL whose result is one number: a scalar, or a vector of one sample. turnout fills in
    `{{ namespace }}`, `{{ backend }}`, `{{ service }}`, `{{ canaryRevision }}`,
    `{{ stableRevision }}`, `{{ canaryColor }}`, `{{ stableColor }}`, `{{ interval }}` (the checks'
    interval, e.g. `10s`) and `{{ window }}` (the time since the step started, at least the
    interval, e.g. `45s`)."""


class ThresholdRange(Model):
    """The range a metric's value must be in; a bound left unset is not checked."""

    min: Annotated[float, Field(allow_inf_nan=False)] | None = None
    """Smallest value that passes."""
    max: Annotated[float, Field(allow_inf_nan=False)] | None = None
    """Largest value that passes."""


class AnalysisMetric(Model):
    """A number from the team's own Prometheus that each canary step must keep in range."""

    name: Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN, max_length=63)]
    """The metric's name, as messages and the status name it, e.g. `error-rate`."""
    prometheus: PrometheusQuery
    """Where and what to ask."""
    threshold_range: ThresholdRange
    """The range the query's value must be in, e.g. `{max: 0.05}`."""


class Analysis(Model):
    """How each canary step is judged on real traffic, from the engines' own metrics (vLLM's
    `/metrics`), and from the team's Prometheus when `metrics` are given. An engine without metrics
    of its own, such as Ollama, is judged by the checks and `metrics`, or by the checks alone."""

    max_error_ratio: Annotated[float, Field(ge=0, le=1)] = 0.05
    """Largest share of the canary's requests that may fail with a 5xx answer."""
    max_latency_ratio: Annotated[float, Field(ge=1, le=100)] | None = None
    """Largest p95 end-to-end latency of the canary as a multiple of the stable revision's. Unset: not compared."""
    min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    """Requests the canary must have served in a step before a verdict: with fewer, the step waits."""
    metrics: list[AnalysisMetric] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Prometheus queries each step's verdict also needs in range, every check round. A query
    without data waits (like too little traffic); an unreachable server or an error answer fails
    the round."""


class HttpRouteRef(Model):
    """A Gateway API HTTPRoute in the backend's namespace."""

    name: DnsSubdomain
    """The HTTPRoute's name. One of its rules must refer to both Services `<service>-blue` and
    `<service>-green`; turnout sets those two weights and nothing else."""


class CanaryTraffic(Model):
    """How traffic is split between the two revisions."""

    http_route: HttpRouteRef | None = None
    """Split by the weights of an HTTPRoute's backendRefs (exact weights). Unset: the stable Service
    selects both revisions and the weight is the share of Ready pods."""


class Canary(Model):
    """Traffic moved to the new revision in steps, each judged before the next."""

    steps: Annotated[list[CanaryStep], Field(min_length=1, max_length=32)]
    """The steps, in order, e.g. `[{setWeight: 10}, {pause: {seconds: 300}}, {setWeight: 50}, {pause: {}}]`;
    after the last one the new revision takes all traffic."""
    max_surge: Annotated[int, Field(ge=0, le=1000)] = 1
    """Replicas that may run above `replicas` during the canary. 0: a stable replica is scaled down
    before a canary replica starts, for clusters without a spare GPU."""
    analysis: Analysis = Field(default_factory=Analysis)
    """How each step is judged on real traffic."""
    traffic: CanaryTraffic = Field(default_factory=CanaryTraffic)
    """How traffic is split."""


class ConfigMapKeyRef(Model):
    """A key in a ConfigMap in the backend's namespace."""

    name: DnsSubdomain
    """Name of the ConfigMap."""
    key: Annotated[str, StringConstraints(pattern=DATA_KEY_PATTERN, max_length=253)]
    """Key in the ConfigMap's data whose value is used."""


class BenchmarkPrompts(Model):
    """The chat requests a benchmark sends, in turn, as many times as it needs."""

    config_map_key_ref: ConfigMapKeyRef | None = None
    """A ConfigMap key holding JSONL: one OpenAI chat request body per line, at least
    `{"messages": [{"role": "user", "content": "..."}]}`. turnout sets `model`, `stream` and, when
    given, `max_tokens`. Unset: turnout's built-in short chat prompts."""


class Benchmark(Model):
    """A bounded load of streamed chat completions sent to one pod of the new revision and then to one
    pod of the old (never both at once), and the gates the new revision's numbers must pass before it
    takes traffic. The old pod serves production meanwhile: it gets at most `requests` requests, at
    most `concurrency` at a time. Ratios are new ÷ old; a revision with nothing to compare to (the
    first) is judged by the absolute gates alone."""

    prompts: BenchmarkPrompts = Field(default_factory=BenchmarkPrompts)
    """The chat requests to send. Default: the built-in prompts."""
    requests: Annotated[int, Field(ge=1, le=1000)] = 100
    """Requests sent to each pod."""
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    """Requests in flight at once."""
    max_tokens: Annotated[int, Field(ge=1, le=4096)] = 128
    """`max_tokens` of each request: the most output tokens one answer may have."""
    timeout_seconds: Annotated[int, Field(ge=10, le=3600)] = 300
    """Seconds one pod's run may take; a run that takes longer is stopped and fails the benchmark."""
    min_throughput_ratio: Annotated[float, Field(gt=0, le=1000)] | None = None
    """Least output tokens/s of the new revision as a multiple of the old's, e.g. 3.0 for three
    times the throughput. Unset: not compared."""
    max_latency_ratio: Annotated[float, Field(gt=0, le=1000)] | None = None
    """Largest p95 end-to-end latency and p95 time to first token of the new revision as a multiple
    of the old's, e.g. 0.7 for 30% lower. Unset: not compared."""
    max_error_ratio: Annotated[float, Field(ge=0, le=1)] = 0.01
    """Largest share of the new revision's benchmark requests that may fail."""
    min_output_tokens_per_second: Annotated[float, Field(gt=0, le=10_000_000)] | None = None
    """Least output tokens/s of the new revision, whatever the old one does (the gate of a first
    revision). Unset: no floor."""
    max_p95_ttft_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None
    """Largest p95 time to first token of the new revision in seconds, whatever the old one does
    (the gate of a first revision). Unset: no ceiling."""


class Rollout(Model):
    """How a new revision is proven and switched to. Changing these never starts a cutover."""

    strategy: Strategy = Strategy.BLUE_GREEN
    """BlueGreen keeps the old revision serving until the new one is proven. Recreate scales the
    old one down first, for clusters without spare GPUs (clients see an outage). Canary moves
    traffic in the steps of `canary`."""
    canary: Canary | None = None
    """The steps of strategy Canary (required with it; kept while another strategy runs)."""
    auto_promote: bool = True
    """false: a proven revision waits in phase Paused until promoted with `kubectl turnout promote NAME`
    (it sets `turnout.dev/promote=<status.previewRevision>`) (BlueGreen, Recreate; a canary pauses
    where its steps say)."""
    ready_timeout_seconds: Annotated[int, Field(ge=30, le=86_400)] = 1800
    """Seconds the new revision may take to become Ready (weights load slowly) before rollback."""
    checks: Checks = Field(default_factory=Checks)
    """turnout's own checks of the new revision's pods."""
    bake_seconds: Annotated[int, Field(ge=0, le=86_400)] = 120
    """Seconds the new revision keeps being checked after the switch, the old one kept warm."""
    scale_down_delay_seconds: Annotated[int, Field(ge=0, le=86_400)] = 30
    """Seconds after the bake before the old revision scales to zero."""
    auto_rollback: bool = True
    """Roll back by itself when the new revision fails. false: stay Degraded and wait for a human."""
    allow_dimension_change: bool = False
    """For an embedding backend (`model.task: embedding`): let a new revision whose vectors have
    another length (dimension) than the serving revision's take traffic. false: such a revision is
    refused before the switch (reason EmbeddingDimensionChanged), since clients' vector indexes
    hold vectors of the old length and would break; set true when the clients re-index."""
    benchmark: Benchmark | None = None
    """Before the new revision takes traffic, send the same bounded load of streamed chat completions
    to one of its pods and then to one pod of the running revision (never both at once), and promote
    it only if its numbers pass the gates set here. The running pod serves production meanwhile: it
    gets at most `requests` benchmark requests, `concurrency` at a time. Unset: no benchmark.
    Chat models only: its gates are tokens/s and time to first token, which an embedding model
    (`model.task: embedding`) does not produce; such a spec is refused."""


def _kept_as_given(model: type[BaseModel]) -> GetPydanticSchema:
    """Validate a plain dict as `model` (its errors, its CRD schema), and keep the dict as given.

    For Kubernetes objects turnout copies into the pods: typed, so both layers refuse the same
    misspelt or mistyped field at any depth, and passed on unchanged, so revisions stay as they were.
    """

    def schema(source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_wrap_validator_function(
            _validated_unchanged, handler.generate_schema(model), serialization=core_schema.simple_ser_schema("dict")
        )

    return GetPydanticSchema(schema)


def _validated_unchanged(value: Any, validate: ValidatorFunctionWrapHandler) -> Any:
    validate(value)
    return value


class TolerationFields(Model):
    """A Kubernetes Toleration."""

    key: Annotated[str, StringConstraints(max_length=317)] | None = None
    """Taint key; empty matches every key."""
    operator: Literal["Exists", "Equal"] | None = None
    """Equal (the default) compares value; Exists matches any value."""
    value: Annotated[str, StringConstraints(max_length=63)] | None = None
    """Taint value, with operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute", ""] | None = None
    """Taint effect to match; empty matches every effect."""
    toleration_seconds: int | None = None
    """With effect NoExecute: seconds the pod stays bound after the taint appears."""


class EnvVarFields(Model):
    """A Kubernetes EnvVar: name and either value or valueFrom."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    """Variable name."""
    value: Annotated[str, StringConstraints(max_length=65_536)] | None = None
    """Literal value."""
    value_from: dict[str, Any] | None = None
    """A Kubernetes EnvVarSource: secretKeyRef, configMapKeyRef, fieldRef or resourceFieldRef."""


# Keys, values and names in an Affinity: bounded, as everything under a CEL rule must be for the API
# server's cost estimate, by the longest a label key can be (a 253-character prefix, '/', 63 characters).
AffinityString = Annotated[str, StringConstraints(max_length=317)]


class NodeSelectorRequirement(Model):
    """A requirement on a node's label (or field): its value compared with `values` by `operator`."""

    key: AffinityString
    """The label key (or field name)."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    """How the node's value is compared with `values`."""
    values: Annotated[list[AffinityString], Field(max_length=64)] | None = None
    """Values to compare with: one integer for Gt and Lt, none for Exists and DoesNotExist."""


class NodeSelectorTerm(Model):
    """Requirements a node must all meet."""

    match_expressions: Annotated[list[NodeSelectorRequirement], Field(max_length=32)] | None = None
    """Requirements on the node's labels."""
    match_fields: Annotated[list[NodeSelectorRequirement], Field(max_length=32)] | None = None
    """Requirements on the node's fields."""


class NodeSelector(Model):
    """Terms a node must meet at least one of."""

    node_selector_terms: Annotated[list[NodeSelectorTerm], Field(max_length=32)]
    """The terms; a node that meets any of them fits."""


class PreferredSchedulingTerm(Model):
    """A node selector term, weighted among the preferred ones."""

    weight: Annotated[int, Field(ge=1, le=100)]
    """Weight of the term, 1 to 100, added to a node's score when it meets the term."""
    preference: NodeSelectorTerm
    """The term."""


class NodeAffinity(Model):
    """Nodes the pods must, or preferably, run on."""

    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    """Nodes the pods must run on."""
    preferred_during_scheduling_ignored_during_execution: (
        Annotated[list[PreferredSchedulingTerm], Field(max_length=32)] | None
    ) = None
    """Nodes the pods preferably run on."""


class LabelSelectorRequirement(Model):
    """A requirement on a label: its value compared with `values` by `operator`."""

    key: AffinityString
    """The label key."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the label's value is compared with `values`."""
    values: Annotated[list[AffinityString], Field(max_length=64)] | None = None
    """Values to compare with; none for Exists and DoesNotExist."""


class LabelSelector(Model):
    """A Kubernetes label selector: labels and requirements, all to be met."""

    match_labels: Annotated[dict[QualifiedName, LabelValue], Field(max_length=32)] | None = None
    """Labels, each with the value it must have."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=32)] | None = None
    """Requirements on labels."""


class PodAffinityTerm(Model):
    """Pods (by labels and namespaces) whose topology domain (node, zone, ...) is meant."""

    label_selector: LabelSelector | None = None
    """Labels of the pods."""
    namespace_selector: LabelSelector | None = None
    """Labels of the namespaces of the pods."""
    namespaces: Annotated[list[AffinityString], Field(max_length=32)] | None = None
    """Namespaces of the pods; with neither this nor namespaceSelector, the backend's own."""
    topology_key: AffinityString
    """The node label whose value names a domain, e.g. `kubernetes.io/hostname` or `topology.kubernetes.io/zone`."""
    match_label_keys: Annotated[list[AffinityString], Field(max_length=32)] | None = None
    """Label keys whose values, taken from the new pod, are added to labelSelector."""
    mismatch_label_keys: Annotated[list[AffinityString], Field(max_length=32)] | None = None
    """Label keys whose values, taken from the new pod, must differ for the pods selected."""


class WeightedPodAffinityTerm(Model):
    """A pod affinity term, weighted among the preferred ones."""

    weight: Annotated[int, Field(ge=1, le=100)]
    """Weight of the term, 1 to 100, added to a node's score when it meets the term."""
    pod_affinity_term: PodAffinityTerm
    """The term."""


class PodAffinity(Model):
    """Pods the backend's pods must, or preferably, share a topology domain with (or, as anti-affinity, not)."""

    required_during_scheduling_ignored_during_execution: (
        Annotated[list[PodAffinityTerm], Field(max_length=32)] | None
    ) = None
    """Terms every pod must meet."""
    preferred_during_scheduling_ignored_during_execution: (
        Annotated[list[WeightedPodAffinityTerm], Field(max_length=32)] | None
    ) = None
    """Terms pods preferably meet."""


class Affinity(Model):
    """A Kubernetes Affinity."""

    node_affinity: NodeAffinity | None = None
    """Nodes the pods must, or preferably, run on."""
    pod_affinity: PodAffinity | None = None
    """Pods whose topology domain the pods must, or preferably, share."""
    pod_anti_affinity: PodAffinity | None = None
    """Pods whose topology domain the pods must, or preferably, avoid."""


Toleration = Annotated[dict[str, Any], _kept_as_given(TolerationFields)]
EnvVar = Annotated[dict[str, Any], _kept_as_given(EnvVarFields)]


class Drain(Model):
    """How an engine pod stops when its color scales down or a rollback retires it: streams still open
    on it run to their end, up to a limit. Unset fields take the engine's defaults (vLLM: a 5 s pause,
    120 s in all; Ollama: a 60 s pause, 70 s in all)."""

    pre_stop_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    """Seconds the pod keeps serving as before once it is deleted (a `preStop` sleep), before the
    engine gets SIGTERM: the Service's endpoints drop the pod meanwhile, so no new request reaches it.
    Ollama closes every connection at SIGTERM, so for Ollama this pause is the whole drain: make it as
    long as the longest answer. 0: no pause."""
    grace_period_seconds: Annotated[int, Field(ge=1, le=86_400)] | None = None
    """The pod's `terminationGracePeriodSeconds`: the most it may take to stop, the pause included,
    after which the kubelet kills it and cuts whatever is still open. vLLM gets the time after the
    pause as `--shutdown-timeout`: it finishes the requests in flight and takes no new ones. Must
    exceed `preStopSeconds`."""


class PodTemplate(Model):
    """Overrides for the engine's pods. Values are copied into the Deployment as given."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=NO_SPACE_PATTERN)] | None = None
    """Container image. Default: the engine's pinned image."""
    node_selector: dict[QualifiedName, LabelValue] = Field(default_factory=dict, max_length=32)
    """Node labels the pods must match, e.g. `{"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}`."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    """Added to the `nvidia.com/gpu` toleration turnout sets for GPU pods."""
    affinity: Annotated[dict[str, Any], _kept_as_given(Affinity)] = Field(default_factory=dict)
    """A Kubernetes Affinity, copied into the pods as given."""
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=128,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    """Extra environment variables (Kubernetes EnvVar objects), names unique."""
    pod_annotations: dict[QualifiedName, Annotated[str, StringConstraints(max_length=65_536)]] = Field(
        default_factory=dict, max_length=64
    )
    """Annotations added to the engine's pods."""
    pod_labels: dict[QualifiedName, LabelValue] = Field(default_factory=dict, max_length=32)
    """Labels added to the engine's pods; turnout's own labels (`app.kubernetes.io/name`,
    `app.kubernetes.io/instance`, `app.kubernetes.io/component`, `app.kubernetes.io/managed-by`,
    `turnout.dev/*`) cannot be overridden."""
    service_account_name: DnsSubdomain | None = None
    """ServiceAccount the pods run as. Default: the namespace's `default`."""
    image_pull_secrets: list[DnsSubdomain] = Field(
        default_factory=list, max_length=16, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Names of Secrets used to pull the image."""
    priority_class_name: DnsSubdomain | None = None
    """PriorityClass of the pods, e.g. to let inference preempt batch jobs."""
    drain: Drain | None = None
    """How long a pod that is scaled down keeps answering the requests it has: the `preStop` pause and
    the grace period. Default: the engine's: vLLM a 5 s pause and 120 s in all, Ollama a 60 s pause
    and 70 s in all (Ollama cuts its streams at SIGTERM)."""


class InferenceBackendSpec(Model):
    """Which engine, which model, how to cut over."""

    engine: Engine
    """`vllm` (GPUs) or `ollama` (CPU or GPU). Switching it starts a cutover like any pod change,
    so falling back to the other engine is one setting."""
    model: ModelSource
    """The model to serve and the name clients use for it."""
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Pods per color. Changing it scales the active color; it does not start a cutover."""
    resources: Resources = Field(default_factory=Resources)
    """Per-replica GPUs, CPU and memory."""
    vllm: Vllm = Field(default_factory=Vllm)
    """Options used when `engine` is vllm; kept while another engine runs."""
    ollama: Ollama = Field(default_factory=Ollama)
    """Options used when `engine` is ollama; kept while another engine runs."""
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    """The stable Service in front of the active color."""
    rollout: Rollout = Field(default_factory=Rollout)
    """How a new revision is proven and switched to."""
    revision_history_limit: Annotated[int, Field(ge=1, le=100)] = 10
    """Revisions kept as ControllerRevisions owned by the backend (each revision's spec, for
    `kubectl turnout history` and `kubectl turnout undo`); the oldest beyond it are deleted, never
    the serving one's. Changing it starts no cutover."""
    template: PodTemplate = Field(default_factory=PodTemplate)
    """Overrides for the engine's pods."""
