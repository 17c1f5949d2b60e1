"""The `status` of an InferenceBackend: what turnout reports, and all the state a step needs.

Everything the rollout needs to resume after an operator restart lives here (or in labels and
annotations on the objects turnout owns), never only in memory.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from turnout.api.benchmark import BenchmarkStatus
from turnout.api.traffic import TrafficCounters


class StatusModel(BaseModel):
    """Base of the status models: camelCase aliases, unknown fields kept out."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_attribute_docstrings=True
    )


class Phase(StrEnum):
    """Where the backend stands, as `kubectl get ib` shows it."""

    PENDING = "Pending"
    INVALID_SPEC = "InvalidSpec"
    PROGRESSING = "Progressing"
    VERIFYING = "Verifying"
    PAUSED = "Paused"
    BENCHMARKING = "Benchmarking"
    CANARY = "Canary"
    BAKING = "Baking"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"


class Color(StrEnum):
    """One of the two Deployments of a backend."""

    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Color:
        return Color.GREEN if self is Color.BLUE else Color.BLUE


FIRST_COLOR = Color.BLUE
"""The color a backend's first revision runs on."""


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    ROLLED_BACK = "RolledBack"
    INVALID_SPEC = "InvalidSpec"
    CONFLICT = "Conflict"
    EXPOSED = "Exposed"
    ROUTED = "Routed"


class Condition(StatusModel):
    """A Kubernetes API convention condition."""

    type: str
    """Ready, Progressing, Degraded, RolledBack, InvalidSpec, Conflict, Exposed or Routed."""
    status: str
    """True, False or Unknown."""
    reason: str
    """CamelCase reason, e.g. CheckFailed."""
    message: str = ""
    """What happened, for a human, saying what to change when the user can."""
    observed_generation: int | None = None
    """The spec generation the condition describes."""
    last_transition_time: str | None = None
    """RFC 3339 time the status last changed (not the reason or message)."""


class TrafficBaseline(StatusModel):
    """What each color had served when the step's window opened: the step is judged on what came after."""

    canary: TrafficCounters
    """The new revision's pods, summed."""
    stable: TrafficCounters
    """The stable revision's pods, summed."""


class ColorTraffic(StatusModel):
    """What one color served in the step's window so far."""

    requests: int = 0
    """Requests it finished in the window."""
    error_ratio: float | None = None
    """Share of the requests answered 5xx."""
    p95_latency_seconds: float | None = None
    """p95 end-to-end request latency, as the engine's histogram estimates it."""
    p95_ttft_seconds: float | None = None
    """p95 time to first token."""


class MetricValue(StatusModel):
    """One Prometheus metric of `analysis.metrics` as last read."""

    name: str
    """The metric's name in `analysis.metrics`."""
    value: float | None = None
    """The query's number; None when Prometheus had no data or no usable answer."""


class AnalysisStatus(StatusModel):
    """The last verdict on the step's traffic."""

    outcome: str
    """Pass, Fail or Wait (too little traffic, or no sample this round)."""
    message: str = ""
    """The verdict with its numbers, e.g. `canary 5xx 21.0% of 200 requests > 5.0% (analysis.maxErrorRatio)`."""
    canary: ColorTraffic | None = None
    """What the new revision served in the window."""
    stable: ColorTraffic | None = None
    """What the stable revision served in the window."""
    metrics: list[MetricValue] = Field(default_factory=list)
    """The Prometheus metrics of `analysis.metrics` as last read."""


class CanaryStatus(StatusModel):
    """Where a canary stands: its step, the weight it sets, and the share of traffic in effect."""

    step: int = 0
    """Index of the step in progress in `rollout.canary.steps`."""
    weight: int = 0
    """Percent of the traffic the steps so far give the new revision."""
    traffic_share: int | None = None
    """Percent of the traffic in effect on the new revision: its Ready pods among all Ready pods the
    Service selects, or its weight on the HTTPRoute. None until traffic is split."""
    step_started_at: str | None = None
    """RFC 3339 time the step's weight took effect; a pause counts from here."""
    analysis: AnalysisStatus | None = None
    """The last verdict on the step's traffic, from the engines' own metrics; for an engine that
    serves none (Ollama) the step is judged by the checks alone, and this says so."""
    analysis_passed: bool = False
    """The step's traffic was judged and passed."""
    baseline: TrafficBaseline | None = None
    """The counters the step's window opened with (taken once the step's weight is in effect)."""


class ServedModel(StatusModel):
    """What one revision's pods serve."""

    revision: str
    """The revision."""
    engine: str
    """vllm or ollama."""
    model: str
    """The model the engine loads (its own override, such as `ollama.model`, when set)."""
    embedding_dimension: int | None = None
    """For an embedding model (`model.task: embedding`): the length of the vectors its pods answer,
    as turnout's checks measured it. A new revision must keep the serving revision's, unless
    `rollout.allowDimensionChange`."""


class ModelFilesStatus(StatusModel):
    """What the model's own files on the model claim say about its size, read once per vLLM revision
    (one without `model.architecture`) by a short-lived inspector pod, before the revision's pods."""

    revision: str
    """The revision the files were read for."""
    source: str = ""
    """Where the facts came from, e.g. `config.json on claim models`."""
    path: str = ""
    """The directory read, in the engine's container, e.g.
    `/data/models/huggingface/hub/models--org--name/snapshots/<commit>`."""
    started_at: str | None = None
    """RFC 3339 time the inspector pod was asked for; it gets a bounded time to answer."""
    complete: bool = False
    """The reading is over: with the facts below, or with why there are none."""
    parameters: int | None = None
    """Parameter count: the checkpoint's bytes over its dtype (unset for a quantized checkpoint)."""
    layers: int | None = None
    """Transformer layers (`num_hidden_layers`)."""
    kv_heads: int | None = None
    """Key/value heads (`num_key_value_heads`, else `num_attention_heads`)."""
    head_dim: int | None = None
    """Size of one attention head (`head_dim`, else `hidden_size / num_attention_heads`)."""
    vocab_size: int | None = None
    """Vocabulary (`vocab_size`)."""
    weights_bytes: int | None = None
    """The checkpoint's bytes (all shards): what vLLM holds of a quantized checkpoint."""
    message: str = ""
    """What was read, or why nothing was (files not on the claim yet, the inspector pod not Ready)."""


class GpuMemoryStatus(StatusModel):
    """turnout's estimate of the GPU memory a vLLM revision needs per GPU, made before its pods are created."""

    revision: str
    """The revision estimated."""
    weights_gib: float | None = Field(default=None, alias="weightsGiB")
    """Weights per GPU, GiB."""
    kv_cache_gib: float | None = Field(default=None, alias="kvCacheGiB")
    """KV cache of one sequence of maxModelLen tokens per GPU, GiB."""
    allowance_gib: float | None = Field(default=None, alias="allowanceGiB")
    """Allowance for activations and runtime per GPU, GiB."""
    needed_gib: float | None = Field(default=None, alias="neededGiB")
    """All of the above, GiB."""
    available_gib: float | None = Field(default=None, alias="availableGiB")
    """gpuMemoryUtilization times the memory of one GPU, GiB; unset when unknown."""
    fits: bool | None = None
    """Whether it fits; unset when it cannot be said (no architecture facts, or GPU memory unknown)."""
    message: str = ""
    """The estimate in words, with what would fit when it does not."""
    source: str | None = None
    """Where the model's size facts came from: `spec` (model.architecture) or `config.json on claim
    <name> (<directory>)`; unset when there were none."""


class InferenceBackendStatus(StatusModel):
    """What turnout observed and decided."""

    phase: Phase = Phase.PENDING
    active_color: Color | None = None
    """The color the Service selects."""
    active_revision: str | None = None
    """Revision (hash of the pod-affecting spec) the Service serves."""
    active_engine: str | None = None
    """The engine of the revision the Service serves (after a rollback, not the spec's)."""
    active_model: str | None = None
    """The model the revision the Service serves loads (after a rollback, not the spec's)."""
    served_models: list[ServedModel] = Field(default_factory=list)
    """Engine and model of each revision the status names (active, preview, previous). A list, not a
    map: the status is merge-patched, which replaces a list but would keep a map's old keys."""
    preview_color: Color | None = None
    """The color being proven, while a cutover runs."""
    preview_revision: str | None = None
    """Revision being proven, while a cutover runs."""
    preview_started_at: str | None = None
    """RFC 3339 time the preview color was given its revision; the ready timeout counts from here."""
    previous_color: Color | None = None
    """The color the Service left at the switch, kept warm through the bake and the scale-down delay;
    after a rollback, the failed color, drained through the scale-down delay unless it failed outright."""
    previous_revision: str | None = None
    """Revision the Service left at the switch."""
    switched_at: str | None = None
    """RFC 3339 time the Service last moved; the bake counts from here."""
    scale_down_at: str | None = None
    """RFC 3339 time after which the previous color scales to zero."""
    check_passes: int = 0
    """Passing check rounds in a row in the current phase."""
    check_failures: int = 0
    """Failing check rounds in a row in the current phase."""
    benchmark: BenchmarkStatus | None = None
    """The last benchmark (`rollout.benchmark`): the revision it judged, each color's numbers, the verdict."""
    gpu_memory: GpuMemoryStatus | None = None
    """The GPU memory estimate of the last vLLM revision started (or refused for it)."""
    model_files: ModelFilesStatus | None = None
    """The model's size facts as read from its files on the model claim, for the GPU memory estimate."""
    canary: CanaryStatus | None = None
    """The canary in flight (strategy Canary), from the moment its pods proved they serve the model."""
    last_check_time: str | None = None
    """RFC 3339 time (to the millisecond) of the last check round; rounds are checks.intervalSeconds apart."""
    last_failed_revision: str | None = None
    """Never retried until the spec changes again."""
    last_failure_reason: str | None = None
    """CamelCase reason of the last rollback, e.g. ReadyTimeout or CheckFailed."""
    last_failure_message: str | None = None
    """What went wrong with the last failed revision."""
    last_retry: str | None = None
    """The `turnout.dev/retry` annotation last acted on (`<revision>@<when>`): each value retries once."""
    ready_replicas: int = 0
    """Ready pods of the active color."""
    replicas: int = 0
    """Pods of the active color, for the scale subresource."""
    selector: str | None = None
    """Label selector of the active color's pods, for the scale subresource."""
    observed_generation: int | None = None
    """The spec generation turnout last acted on."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Progressing, Degraded, RolledBack, InvalidSpec, Conflict, Exposed and Routed, by Kubernetes API
    conventions."""
