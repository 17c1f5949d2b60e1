"""What `plan()` asks the executor to do. Each action is idempotent."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from turnout.api.benchmark import BenchmarkResult
from turnout.api.status import Color


@dataclass(frozen=True)
class ApplyDeployment:
    """Server-side apply the color's Deployment, rendered from the current spec, at `replicas`."""

    color: Color
    replicas: int


@dataclass(frozen=True)
class ScaleDeployment:
    """Set the color's replicas, leaving its template (and so its revision) as it is."""

    color: Color
    replicas: int


@dataclass(frozen=True)
class ApplyService:
    """Server-side apply the stable Service selecting `color`: the switch itself."""

    color: Color


@dataclass(frozen=True)
class SplitService:
    """Server-side apply the stable Service selecting the pods of both colors: a canary's traffic
    split without a mesh, where each color's share is its share of the Ready pods."""


@dataclass(frozen=True)
class ApplyColorServices:
    """Server-side apply one Service per color, `<service>-blue` and `<service>-green`, which the
    HTTPRoute's backendRefs name."""


@dataclass(frozen=True)
class SetRouteWeights:
    """Set the weights of the HTTPRoute's two backendRefs of turnout's: `weight` for `color`'s
    Service, the rest of 100 for the other's. Nothing else of the route changes."""

    color: Color
    weight: int


@dataclass(frozen=True)
class ApplyClaim:
    """Create the model volume's claim (never updated: a bound claim's spec is immutable)."""


@dataclass(frozen=True)
class CreateInspector:
    """Create the inspector pod of the spec's revision: the model claim read-only, a file server over
    the model's directory (see `render/inspector.py`). One that exists already is left as it is."""


@dataclass(frozen=True)
class DeleteInspector:
    """Delete an inspector pod of the backend's: its files are read, or no longer wanted."""

    name: str


@dataclass(frozen=True)
class RecordRevision:
    """Keep the spec's revision in the backend's history (a ControllerRevision, numbered after the
    newest), and delete the oldest beyond `spec.revisionHistoryLimit`, never those in `keep`."""

    change_cause: str | None
    """The backend's `kubernetes.io/change-cause` annotation when the cutover started."""
    keep: tuple[str, ...] = ()


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class RecordEvent:
    """A Kubernetes Event on the InferenceBackend."""

    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class Benchmarked:
    """A benchmark gate was judged; the executor records it in metrics."""

    passed: bool
    new: BenchmarkResult | None
    old: BenchmarkResult | None


class CutoverResult(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    ABORTED = "aborted"


@dataclass(frozen=True)
class CutoverFinished:
    """A cutover ended; the executor records it in metrics."""

    result: CutoverResult
    seconds: float
    """From the preview's start to this end."""
    reason: str = ""
    """The failure reason when rolled back."""


Action = (
    ApplyDeployment
    | ScaleDeployment
    | ApplyService
    | SplitService
    | ApplyColorServices
    | SetRouteWeights
    | ApplyClaim
    | CreateInspector
    | DeleteInspector
    | RecordRevision
    | RecordEvent
)
