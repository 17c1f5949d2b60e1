"""The `spec` of an InferenceBackend: what a model owner writes.

These models are the single source of the CRD's schema (see `turnout.api.crd`). Field names are
snake_case in Python and camelCase in Kubernetes (the alias). Descriptions become the CRD's
documentation, so they are written for the person running `kubectl explain`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

# Kubernetes quantities ("8", "500m", "64Gi", "1.5G"): checked here so a typo is an InvalidSpec,
# not a Deployment the API server refuses half-way through a cutover.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
Quantity = Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)]
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, max_length=63)]
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DnsSubdomain = Annotated[str, StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]


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


class AccessMode(StrEnum):
    READ_WRITE_ONCE = "ReadWriteOnce"
    READ_ONLY_MANY = "ReadOnlyMany"
    READ_WRITE_MANY = "ReadWriteMany"
    READ_WRITE_ONCE_POD = "ReadWriteOncePod"


class Dtype(StrEnum):
    AUTO = "auto"
    HALF = "half"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    FLOAT = "float"
    FLOAT32 = "float32"


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class Strategy(StrEnum):
    """How a new revision replaces the running one."""

    BLUE_GREEN = "BlueGreen"
    RECREATE = "Recreate"


class Storage(Model):
    """The volume that holds model weights (vLLM) or pulled models (Ollama), shared by both colors."""

    claim_name: DnsSubdomain | None = None
    """PersistentVolumeClaim to mount. Default: `<backend name>-models`."""
    create: bool = False
    """Create the claim if it does not exist. turnout never deletes a claim it created unless
    `deleteClaimOnDelete` is true."""
    delete_claim_on_delete: bool = False
    """Delete the claim turnout created when the backend is deleted (weights are lost)."""
    size: Quantity = "100Gi"
    """Requested size when turnout creates the claim."""
    access_modes: list[AccessMode] = Field(
        default_factory=lambda: [AccessMode.READ_WRITE_MANY], min_length=1, max_length=4
    )
    """Access modes when turnout creates the claim. Blue/green runs two colors at once, so a
    claim shared across nodes needs ReadWriteMany (or ReadOnlyMany for pre-loaded weights)."""
    storage_class_name: DnsSubdomain | None = None
    """Storage class when turnout creates the claim. Default: the cluster's default class."""
    mount_path: Annotated[str, StringConstraints(pattern=r"^/[^\x00]*$", max_length=256)] = "/data/models"
    """Where the volume is mounted in the engine's container."""


class ModelSource(Model):
    """Which model to serve and under which name."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\s\x00]+$")]
    """vLLM: a path on the model volume or a Hugging Face hub id (cached on the volume).
    Ollama: a model tag such as `llama3:8b` (no tag means `:latest`)."""
    served_name: Annotated[
        str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
    ] | None = None
    """The model name clients send, the same on both engines. Default: the backend's name."""
    storage: Storage | None = None
    """The shared model volume. Without it each pod gets an empty scratch volume and downloads
    the model again on every start."""


class Resources(Model):
    """Per-replica compute. GPUs are `nvidia.com/gpu`."""

    gpus: Annotated[int, Field(ge=0, le=64)] | None = None
    """GPUs per replica. Default: 1 for vLLM, 0 for Ollama."""
    cpu: Quantity | None = None
    """CPU request and limit, e.g. `8` or `500m`."""
    memory: Quantity | None = None
    """Memory request and limit, e.g. `64Gi`."""


class SecretKeyRef(Model):
    """A key in a Secret in the backend's namespace."""

    name: DnsSubdomain
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]


class Vllm(Model):
    """vLLM options. turnout owns `--model`, `--served-model-name`, `--port`, the parallelism and
    the API key; everything else can go in `extraArgs`."""

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
    extra_args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=list, max_length=128
    )
    """More `vllm serve` arguments, each list item one argv word, e.g. `["--enable-prefix-caching"]`."""


class Ollama(Model):
    """Ollama options, passed as environment variables."""

    keep_alive: Annotated[str, StringConstraints(pattern=r"^(-1|0|[0-9]+(ns|us|ms|s|m|h)?)+$", max_length=32)] = (
        "24h"
    )
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


class Checks(Model):
    """turnout's own engine-aware checks of each new pod, before and after the switch."""

    interval_seconds: Annotated[int, Field(ge=1, le=300)] = 5
    """Seconds between two rounds of checks."""
    timeout_seconds: Annotated[int, Field(ge=1, le=120)] = 3
    """Seconds one check may take; a timeout counts as a failure."""
    success_threshold: Annotated[int, Field(ge=1, le=100)] = 3
    """Passing rounds in a row before the new revision is proven."""
    failure_threshold: Annotated[int, Field(ge=1, le=100)] = 3
    """Failing rounds in a row before the new revision is rolled back."""
    smoke_request: bool = True
    """Also send one tiny chat completion (`max_tokens: 1`) with the served name."""


class Rollout(Model):
    """How a new revision is proven and switched to. Changing these never starts a cutover."""

    strategy: Strategy = Strategy.BLUE_GREEN
    """BlueGreen keeps the old revision serving until the new one is proven. Recreate scales the
    old one down first, for clusters without spare GPUs (clients see an outage)."""
    auto_promote: bool = True
    """false: a proven revision waits in phase Paused until `kubectl turnout promote`."""
    ready_timeout_seconds: Annotated[int, Field(ge=30, le=86_400)] = 1800
    """Seconds the new revision may take to become Ready (weights load slowly) before rollback."""
    checks: Checks = Field(default_factory=Checks)
    bake_seconds: Annotated[int, Field(ge=0, le=86_400)] = 120
    """Seconds the new revision keeps being checked after the switch, the old one kept warm."""
    scale_down_delay_seconds: Annotated[int, Field(ge=0, le=86_400)] = 30
    """Seconds after the bake before the old revision scales to zero."""
    auto_rollback: bool = True
    """Roll back by itself when the new revision fails. false: stay Degraded and wait for a human."""


class PodTemplate(Model):
    """Overrides for the engine's pods. Values are copied into the Deployment as given."""

    image: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\s\x00]+$")] | None = (
        None
    )
    """Container image. Default: the engine's pinned image."""
    node_selector: dict[str, Annotated[str, StringConstraints(max_length=63)]] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    """Added to the `nvidia.com/gpu` toleration turnout sets for GPU pods."""
    affinity: dict[str, Any] = Field(default_factory=dict)
    env: list[dict[str, Any]] = Field(default_factory=list)
    """Extra environment variables (Kubernetes EnvVar objects)."""
    pod_annotations: dict[str, Annotated[str, StringConstraints(max_length=65_536)]] = Field(
        default_factory=dict
    )
    pod_labels: dict[str, Annotated[str, StringConstraints(max_length=63)]] = Field(default_factory=dict)
    service_account_name: DnsSubdomain | None = None
    image_pull_secrets: list[DnsSubdomain] = Field(default_factory=list)
    """Names of Secrets used to pull the image."""
    priority_class_name: DnsSubdomain | None = None


class InferenceBackendSpec(Model):
    """Which engine, which model, how to cut over."""

    engine: Engine
    model: ModelSource
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Pods per color. Changing it scales the active color; it does not start a cutover."""
    resources: Resources = Field(default_factory=Resources)
    vllm: Vllm = Field(default_factory=Vllm)
    ollama: Ollama = Field(default_factory=Ollama)
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    rollout: Rollout = Field(default_factory=Rollout)
    template: PodTemplate = Field(default_factory=PodTemplate)
