"""An in-memory stand-in for the cluster, for walking `plan()` through a cutover step by step.

It carries out actions the way the executor does (a Deployment applied gets the spec's revision,
a scaled one keeps its template) and nothing more: pods become Ready or fail only when a test
says so, and time moves only when a test moves it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from turnout.api.backend import Backend, InvalidSpec
from turnout.api.labels import inspector_name
from turnout.api.status import Color, InferenceBackendStatus
from turnout.rollout.actions import (
    ApplyClaim,
    ApplyDeployment,
    ApplyService,
    CreateInspector,
    DeleteInspector,
    RecordEvent,
    RecordRevision,
    ScaleDeployment,
    SplitService,
)
from turnout.rollout.observed import (
    ApplyRejection,
    CheckOutcome,
    ColorState,
    GpuNodes,
    InspectorPod,
    ModelFilesRead,
    Observed,
    PodFailure,
)
from turnout.rollout.plan import Plan, check_target, plan

START = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

BASE_SPEC: dict[str, Any] = {
    "engine": "vllm",
    "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "chat"},
    "resources": {"gpus": 1},
    "rollout": {
        "checks": {"intervalSeconds": 5, "successThreshold": 3, "failureThreshold": 3},
        "bakeSeconds": 120,
        "scaleDownDelaySeconds": 30,
        "readyTimeoutSeconds": 600,
    },
}


def spec(**changes: Any) -> dict[str, Any]:
    """BASE_SPEC with top-level sections merged one level deep."""
    merged = {key: (dict(value) if isinstance(value, dict) else value) for key, value in BASE_SPEC.items()}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def backend(**changes: Any) -> Backend:
    return Backend.parse("chat", "ml", spec(**changes))


class World:
    """The cluster as `plan()` would observe it, changed only by actions and by the test."""

    def __init__(self) -> None:
        self.now = START
        self.generation = 1
        self.status = InferenceBackendStatus()
        self.colors: dict[Color, ColorState] = {}
        self.service_color: Color | None = None
        self.service_exists = False
        self.service_split = False
        self.claim_exists = False
        self.promote: str | None = None
        self.abort: str | None = None
        self.retry: str | None = None
        self.paused = False
        self.gpu_nodes: GpuNodes | None = None
        self.inspectors: dict[str, InspectorPod] = {}
        self.model_files: ModelFilesRead | None = None
        """What the next reconcile reads from the inspector pod (observe reads only a Ready one)."""
        self.rejected: ApplyRejection | None = None
        self.last: Plan | None = None

    def observe(self, check: CheckOutcome | None = None) -> Observed:
        return Observed(
            now=self.now,
            generation=self.generation,
            status=self.status,
            colors=dict(self.colors),
            service_exists=self.service_exists,
            service_color=self.service_color,
            service_split=self.service_split,
            claim_exists=self.claim_exists,
            check=check,
            promote=self.promote,
            abort=self.abort,
            retry=self.retry,
            paused=self.paused,
            gpu_nodes=self.gpu_nodes,
            inspectors=tuple(self.inspectors.values()),
            model_files=self.model_files,
            rejected=self.rejected,
        )

    def step(self, desired: Backend | InvalidSpec, check: CheckOutcome | None = None) -> Plan:
        """One reconcile: observe, plan, carry out the actions, write the status."""
        if check is not None:
            revision = desired.revision if isinstance(desired, Backend) else None
            assert check_target(self.status, revision) is not None, "checks run only where check_target() says"
        result = plan(desired, self.observe(check))
        for action in result.actions:
            self.carry_out(action, desired)
        self.status = result.status
        self.last = result
        return result

    def carry_out(self, action: object, desired: Backend | InvalidSpec) -> None:
        match action:
            case ApplyDeployment(color=color, replicas=replicas):
                assert isinstance(desired, Backend)
                old = self.colors.get(color, ColorState())
                same = old.exists and old.revision == desired.revision
                self.colors[color] = ColorState(
                    exists=True,
                    revision=desired.revision,
                    replicas=replicas,
                    ready=min(old.ready, replicas) if same else 0,
                    pods=min(old.pods, replicas) if same else old.pods,
                    # The same template keeps its pods, and what is wrong with them.
                    failures=old.failures if same else (),
                )
            case ScaleDeployment(color=color, replicas=replicas):
                old = self.colors[color]
                self.colors[color] = replace(old, replicas=replicas, ready=min(old.ready, replicas))
            case ApplyService(color=color):
                self.service_color, self.service_split = color, False
                self.service_exists = True
            case SplitService():
                self.service_color, self.service_split = None, True
                self.service_exists = True
            case ApplyClaim():
                self.claim_exists = True
            case CreateInspector():
                assert isinstance(desired, Backend)
                name = inspector_name(desired)
                self.inspectors.setdefault(name, InspectorPod(name, desired.revision))
            case DeleteInspector(name=name):
                self.inspectors.pop(name, None)
            case RecordEvent() | RecordRevision():
                pass
            case _:
                raise AssertionError(f"unknown action {action!r}")

    def start_verifying(self, desired: Backend) -> None:
        """Start a cutover to `desired` and let the preview's pods become Ready: phase Verifying."""
        self.step(desired)
        preview = self.status.preview_color
        assert preview is not None, self.status
        self.ready(preview)
        self.step(desired)
        assert self.status.phase == "Verifying", self.status

    def ready(self, color: Color) -> None:
        """All pods of `color` become Ready."""
        old = self.colors[color]
        self.colors[color] = replace(old, ready=old.replicas, pods=old.replicas, failures=())

    def pods_gone(self, color: Color) -> None:
        """The color's pods have terminated, and what was wrong with them went with them."""
        self.colors[color] = replace(self.colors[color], pods=0, ready=0, failures=())

    def fail_pods(self, color: Color, *failures: PodFailure) -> None:
        self.colors[color] = replace(self.colors[color], ready=0, failures=failures)

    def inspector_ready(self, read: ModelFilesRead) -> None:
        """The inspector pods become Ready, and the next reconcile reads `read` from the spec's revision's."""
        self.inspectors = {name: replace(pod, ready=True) for name, pod in self.inspectors.items()}
        self.model_files = read

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def events(self) -> list[RecordEvent]:
        assert self.last is not None
        return [a for a in self.last.actions if isinstance(a, RecordEvent)]

    def changes(self) -> list[object]:
        """The last plan's actions on the backend's objects (not its Events, nor its history)."""
        assert self.last is not None
        return [a for a in self.last.actions if not isinstance(a, RecordEvent | RecordRevision)]

    def recorded(self) -> list[RecordRevision]:
        """The last plan's records of the spec's revision in history."""
        assert self.last is not None
        return [a for a in self.last.actions if isinstance(a, RecordRevision)]


PASS = CheckOutcome(passed=True)


def fail(message: str = 'pod chat-green-1 (10.244.0.7): /v1/models lacks "chat"') -> CheckOutcome:
    return CheckOutcome(passed=False, message=message)


def healthy_world(desired: Backend) -> World:
    """A world where `desired` has been created, proven and promoted on blue."""
    world = World()
    world.step(desired)
    world.ready(Color.BLUE)
    world.step(desired)
    for _ in range(3):
        world.step(desired, PASS)
    assert world.status.phase == "Healthy", world.status
    return world
