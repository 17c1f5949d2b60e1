"""What `plan()` sees: the cluster's state around one backend, read by the kube layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from turnout.api.benchmark import BenchmarkResult
from turnout.api.status import Color, InferenceBackendStatus
from turnout.api.traffic import TrafficCounters
from turnout.engines.model_files import ModelFacts


class FailureReason(StrEnum):
    """Why a revision failed; the CamelCase reason in conditions, Events and metrics."""

    READY_TIMEOUT = "ReadyTimeout"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    OOM_KILLED = "OOMKilled"
    UNSCHEDULABLE = "Unschedulable"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    FAILED_CREATE = "FailedCreate"
    CHECK_FAILED = "CheckFailed"
    EMBEDDING_DIMENSION_CHANGED = "EmbeddingDimensionChanged"
    ANALYSIS_FAILED = "AnalysisFailed"
    APPLY_FAILED = "ApplyFailed"
    BENCHMARK_FAILED = "BenchmarkFailed"
    INSUFFICIENT_GPU_MEMORY = "InsufficientGPUMemory"
    ABORTED = "Aborted"


@dataclass(frozen=True)
class PodFailure:
    """A failure the cluster reports on one pod (a container waiting or killed, a pod unschedulable),
    or on a Deployment whose pods cannot be created at all (a quota, the namespace's Pod Security)."""

    pod: str
    reason: FailureReason
    message: str
    since: datetime | None = None
    """When the cluster first reported it, where it says (PodScheduled's lastTransitionTime)."""
    kind: str = "pod"
    """What `pod` names: a pod, or the Deployment whose pods could not be created."""


@dataclass(frozen=True)
class ColorState:
    """One color's Deployment and pods."""

    exists: bool = False
    revision: str | None = None
    """The `turnout.dev/revision` label of the Deployment's pod template."""
    replicas: int = 0
    """The Deployment's desired replicas."""
    ready: int = 0
    """Ready pods that run the Deployment's current template."""
    pods: int = 0
    """Pods of this color that still exist, Ready or not (Recreate waits for zero)."""
    failures: tuple[PodFailure, ...] = ()
    """Failures of the pods that run the Deployment's current template."""


@dataclass(frozen=True)
class CheckOutcome:
    """One round of turnout's engine-aware checks over the pods of the color being checked."""

    passed: bool
    message: str = ""
    embedding_dimension: int | None = None
    """The length of the vectors the pods answered (an embedding model's round that passed)."""


@dataclass(frozen=True)
class MetricReading:
    """One metric of `rollout.canary.analysis.metrics` as the team's Prometheus answered it this round."""

    name: str
    value: float | None
    """The query's number; None: no data, or `problem`."""
    problem: str = ""
    """Why there is no usable answer (unreachable, an error answer, not one number); "" when there is."""


@dataclass(frozen=True)
class TrafficSample:
    """What each color has served since its pods started, from their own metrics, read in this
    reconcile's check round; `problem` says why there is no sample (a pod that could not be read)."""

    canary: TrafficCounters | None
    stable: TrafficCounters | None
    problem: str = ""
    metrics: tuple[MetricReading, ...] = ()
    """The Prometheus queries of `analysis.metrics`, asked in the same round."""


@dataclass(frozen=True)
class BenchmarkRun:
    """The benchmark run in this reconcile: one pod of the new revision, then one of the serving one."""

    new: BenchmarkResult | None
    old: BenchmarkResult | None
    """None when nothing serves yet (a first revision), or the serving color has no Ready pod."""
    problem: str = ""
    """Why it could not run (no Ready pod of the new revision, the prompts' ConfigMap missing)."""


@dataclass(frozen=True)
class RouteState:
    """The HTTPRoute a canary moves traffic with, and the Services of each color its refs name."""

    weights: dict[Color, int] | None = None
    """The weights of turnout's two backendRefs now; None when they cannot be read."""
    problem: str = ""
    """Why turnout cannot set those weights (the route is missing, or has no refs of turnout's)."""
    color_services: bool = False
    """Both colors' Services exist as turnout renders them."""


@dataclass(frozen=True)
class ApplyRejection:
    """The API server refused a write of this reconcile for good (400, 403, 404, 413, 422)."""

    color: Color | None
    """The color whose Deployment was refused; None for the Service or the claim."""
    what: str
    """The object as a person names it, e.g. `Deployment chat-green`."""
    message: str
    """The API server's own message, which says what it refused and why."""


@dataclass(frozen=True)
class InspectorPod:
    """The backend's inspector pod (`turnout.dev/inspects: model-config`), which serves the model's
    files from the claim while turnout reads them."""

    name: str
    revision: str | None
    """The revision whose model it serves (its `turnout.dev/revision` label)."""
    ready: bool = False
    failures: tuple[PodFailure, ...] = ()
    deleting: bool = False


@dataclass(frozen=True)
class ModelFilesRead:
    """What reading the model's files from the Ready inspector pod gave: the facts, or why there are
    none (`problem`), or no answer yet (`retry`: its server does not listen yet)."""

    facts: ModelFacts | None = None
    source: str = ""
    """Where they were read, e.g. `config.json on claim models`."""
    path: str = ""
    """The directory they were read from, in the engine's container."""
    problem: str = ""
    retry: bool = False


@dataclass(frozen=True)
class GpuNode:
    """A node the pods can land on (it has `nvidia.com/gpu` and matches `template.nodeSelector`)."""

    name: str
    memory_mib: int | None
    """Its `nvidia.com/gpu.memory` label (MiB per GPU, as NVIDIA GPU feature discovery sets it)."""
    product: str | None = None
    """Its `nvidia.com/gpu.product` label, e.g. NVIDIA-L4."""


@dataclass(frozen=True)
class GpuNodes:
    """The GPU nodes read for a GPU memory estimate, or why they could not be read."""

    nodes: tuple[GpuNode, ...] = ()
    problem: str = ""


@dataclass(frozen=True)
class Observed:
    """Everything one reconcile of one backend reads before deciding."""

    now: datetime
    generation: int
    status: InferenceBackendStatus
    colors: dict[Color, ColorState] = field(default_factory=dict)
    service_exists: bool = False
    service_color: Color | None = None
    """The color the Service selects, None when it selects none or both (or does not exist)."""
    service_split: bool = False
    """The Service selects the pods of both colors (a canary without a mesh)."""
    service_current: bool = True
    """The Service's type and ports are what the spec says (its selector aside)."""
    claim_exists: bool = False
    check: CheckOutcome | None = None
    """The check round run for this reconcile, on the color `check_due()` named."""
    traffic: TrafficSample | None = None
    """A canary's traffic, read with the check round of a step (engines that serve metrics only)."""
    benchmark: BenchmarkRun | None = None
    """The benchmark run in this reconcile (phase Benchmarking)."""
    route: RouteState | None = None
    """The HTTPRoute of a canary with `canary.traffic.httpRoute`; None without one."""
    promote: str | None = None
    """The revision named by the `turnout.dev/promote` annotation, if any."""
    abort: str | None = None
    """The revision named by the `turnout.dev/abort` annotation, if any."""
    retry: str | None = None
    """The `turnout.dev/retry` annotation, `<revision>@<when>`, if any."""
    change_cause: str | None = None
    """The backend's `kubernetes.io/change-cause` annotation, if any."""
    paused: bool = False
    """The `turnout.dev/pause` annotation is set: no cutover moves traffic until it is removed."""
    conflicts: tuple[str, ...] = ()
    """Objects turnout would write for this backend that exist and are not this backend's: each a
    sentence naming the object and its owner. Nothing is written while there is one."""
    rejected: ApplyRejection | None = None
    """A write this reconcile's first plan asked for and the API server refused; plan again with it."""
    gpu_nodes: GpuNodes | None = None
    """The GPU nodes, read when a vLLM revision with model size facts is about to start; None otherwise."""
    inspectors: tuple[InspectorPod, ...] = ()
    """The backend's inspector pods (its own: labelled and owned by it)."""
    model_files: ModelFilesRead | None = None
    """The model's files read from the inspector pod in this reconcile (it is Ready and runs the spec's revision)."""

    def color(self, color: Color) -> ColorState:
        return self.colors.get(color, ColorState())
