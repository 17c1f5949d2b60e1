"""The blue/green state machine: `plan(desired, observed) -> Plan`, pure.

Every decision of a cutover lives here. The caller reads the cluster into `Observed`, calls
`plan`, carries out `Plan.actions` in order, and writes `Plan.status`. Nothing is kept in
memory between two calls: all a step needs is in the status, the objects' labels and the
Service's selector, so a restarted operator resumes wherever it stopped, and a Service that
was already moved is never moved again.

Phases: Pending (nothing proven yet) -> Progressing (the preview color scales up) ->
Verifying (its pods are checked) -> [Paused] -> Baking (Service switched, new color still
checked, old color warm) -> Healthy. A failure anywhere rolls back to the old color and
remembers the revision in `lastFailedRevision`, never retried until the spec changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from turnout.api.backend import Backend, InvalidSpec
from turnout.api.labels import color_selector
from turnout.api.spec import Strategy
from turnout.api.status import Color, ConditionType, InferenceBackendStatus, Phase
from turnout.rollout.actions import (
    Action,
    ApplyClaim,
    ApplyDeployment,
    ApplyService,
    CutoverFinished,
    CutoverResult,
    EventType,
    RecordEvent,
    ScaleDeployment,
)
from turnout.rollout.conditions import condition_status, format_precise_time, format_time, parse_time, set_condition
from turnout.rollout.observed import ColorState, FailureReason, Observed, PodFailure

IDLE_RESYNC_SECONDS = 60.0
"""How often a backend with nothing in flight is looked at again (reads only)."""

_FIRST_COLOR = Color.BLUE


@dataclass(frozen=True)
class Plan:
    """What to do now, the status to write after it, and when to look again (seconds)."""

    actions: tuple[Action, ...]
    status: InferenceBackendStatus
    requeue_after: float
    finished: CutoverFinished | None = None


def check_due(status: InferenceBackendStatus, interval_seconds: float, now: datetime) -> Color | None:
    """The color to check in this reconcile, if a round is due: at most one per interval.

    Reconciles also run on every change of the backend, its pods or Deployments; without this,
    rounds would follow those events and "N passes in a row" could take milliseconds.
    """
    target = check_target(status)
    last = parse_time(status.last_check_time)
    if target is None or (last is not None and (now - last).total_seconds() < interval_seconds):
        return None
    return target


def check_target(status: InferenceBackendStatus) -> Color | None:
    """The color whose pods the next reconcile must check, from the phase the status records."""
    if status.phase in (Phase.VERIFYING, Phase.PAUSED):
        return status.preview_color
    if status.phase is Phase.BAKING:
        return status.active_color
    return None


def plan(desired: Backend | InvalidSpec, observed: Observed) -> Plan:
    """Decide the next step of one backend; see the module docstring for the phases."""
    if isinstance(desired, InvalidSpec):
        return _plan_invalid(desired, observed)
    return _Step(desired, observed).decide()


def _plan_invalid(error: InvalidSpec, observed: Observed) -> Plan:
    """An invalid spec changes nothing in the cluster; it is reported, once, and waited out."""
    status = observed.status.model_copy(deep=True)
    status.observed_generation = observed.generation
    actions: list[Action] = []
    if condition_status(status.conditions, ConditionType.INVALID_SPEC) != "True":
        actions.append(RecordEvent(EventType.WARNING, "InvalidSpec", str(error)))
    status.conditions = set_condition(
        status.conditions,
        ConditionType.INVALID_SPEC,
        True,
        "InvalidSpec",
        str(error),
        generation=observed.generation,
        now=observed.now,
    )
    if status.active_color is None:
        status.phase = Phase.PENDING
    return Plan(actions=tuple(actions), status=status, requeue_after=IDLE_RESYNC_SECONDS)


class _Step:
    """Collects actions and the next status while `plan` walks the decision."""

    def __init__(self, backend: Backend, observed: Observed) -> None:
        self.backend = backend
        self.rollout = backend.spec.rollout
        self.revision = backend.revision
        self.replicas = backend.spec.replicas
        self.observed = observed
        self.now = observed.now
        self.status = observed.status.model_copy(deep=True)
        self.status.observed_generation = observed.generation
        self.actions: list[Action] = []
        self.requeue_after = IDLE_RESYNC_SECONDS
        self.finished: CutoverFinished | None = None

    # -- entry point ---------------------------------------------------------------------------

    def decide(self) -> Plan:
        self.condition(ConditionType.INVALID_SPEC, False, "Valid", "")
        storage = self.backend.spec.model.storage
        if storage is not None and storage.create and not self.observed.claim_exists:
            self.actions.append(ApplyClaim())
        status = self.status
        if self.switch_was_interrupted():
            return self.switch()
        if status.switched_at is not None and status.active_revision == self.revision:
            return self.bake()
        if self.revision == status.active_revision and status.preview_color is None:
            return self.steady()
        if self.revision == status.last_failed_revision and status.preview_color is None:
            return self.steady(failed_revision_pending=True)
        return self.cutover()

    # -- steady state ---------------------------------------------------------------------------

    def steady(self, *, failed_revision_pending: bool = False) -> Plan:
        """Keep the active color at its replicas, the Service on it, and retire the previous color."""
        status = self.status
        active = status.active_color
        if active is None:
            # Only reachable when the spec names a revision that failed before anything served.
            self.status.phase = Phase.DEGRADED
            return self.done()
        state = self.observed.color(active)
        if self.revision == status.active_revision:
            if not state.exists or state.replicas != self.replicas or state.revision != self.revision:
                self.actions.append(ApplyDeployment(active, self.replicas))
        elif state.replicas != self.replicas:
            # The spec names a failed revision: the active color keeps its own template.
            self.actions.append(ScaleDeployment(active, self.replicas))
        if (self.observed.service_color != active or not self.observed.service_exists) and (
            ApplyService(active) not in self.actions
        ):
            self.actions.append(ApplyService(active))
        if active.other != status.previous_color and self.observed.color(active.other).replicas > 0:
            # Left over by an abandoned cutover: an idle color holds no GPUs.
            self.actions.append(ScaleDeployment(active.other, 0))
        self.retire_previous()

        if failed_revision_pending:
            status.phase = Phase.DEGRADED
            self.condition(
                ConditionType.DEGRADED,
                True,
                status.last_failure_reason or "RolledBack",
                f"revision {self.revision} failed and is not retried until the spec changes: "
                f"{status.last_failure_message or ''}".rstrip(": "),
            )
        elif self.replicas > 0 and state.ready == 0:
            status.phase = Phase.DEGRADED
            self.condition(ConditionType.DEGRADED, True, "NoReadyPods", f"no pod of {active} is Ready")
        else:
            if status.phase is not Phase.HEALTHY:
                self.event(EventType.NORMAL, "Healthy", f"revision {status.active_revision} serves on {active}")
            status.phase = Phase.HEALTHY
            self.condition(ConditionType.DEGRADED, False, "AsExpected", "")
        self.condition(ConditionType.PROGRESSING, False, "Idle", "no cutover in progress")
        return self.done()

    def retire_previous(self) -> None:
        """Scale the previous color to zero once its scale-down delay has passed."""
        status = self.status
        if status.previous_color is None:
            return
        due = parse_time(status.scale_down_at)
        if due is not None and self.now < due:
            self.requeue_after = min(self.requeue_after, (due - self.now).total_seconds())
            return
        if self.observed.color(status.previous_color).replicas > 0:
            self.actions.append(ScaleDeployment(status.previous_color, 0))
            self.event(EventType.NORMAL, "ScaledDown", f"{status.previous_color} scaled to zero")
        status.previous_color = None
        status.previous_revision = None
        status.scale_down_at = None

    # -- the cutover ------------------------------------------------------------------------

    def cutover(self) -> Plan:
        """Move toward the spec's revision: start, continue or restart the preview."""
        status = self.status
        if status.switched_at is not None:
            # The spec changed during a bake: the baking revision stays, the newest spec wins,
            # and the previous color is the only one free to carry it.
            self.event(EventType.NORMAL, "BakeInterrupted", f"spec changed to revision {self.revision}")
            self.finish(CutoverResult.SUPERSEDED)
            status.switched_at = None
            status.preview_started_at = None
        if self.observed.abort == self.revision:
            return self.fail(FailureReason.ABORTED, "aborted by kubectl turnout abort", force_rollback=True)
        if status.preview_color is not None and status.preview_revision != self.revision:
            self.event(
                EventType.NORMAL,
                "Superseded",
                f"revision {status.preview_revision} abandoned for {self.revision}",
            )
            self.finish(CutoverResult.SUPERSEDED)
            status.preview_started_at = None
            # Passes counted for the abandoned revision prove nothing about this one.
            status.check_passes = status.check_failures = 0
            status.phase = Phase.PROGRESSING
        if status.preview_color is None:
            # The idle color carries the preview; if it was still warm from the last cutover it is
            # reused as it is when it already runs this revision (a revert is a fast rollback).
            status.preview_color = status.active_color.other if status.active_color else _FIRST_COLOR
            status.previous_color = status.previous_revision = status.scale_down_at = None
        status.preview_revision = self.revision
        preview = status.preview_color
        self.condition(ConditionType.PROGRESSING, True, "NewRevision", f"revision {self.revision} on {preview}")
        if status.active_color is not None:
            self.condition(ConditionType.DEGRADED, False, "AsExpected", "")
        self.requeue_after = float(self.rollout.checks.interval_seconds)

        active = status.active_color
        if self.rollout.strategy is Strategy.RECREATE and active is not None and status.preview_started_at is None:
            old = self.observed.color(active)
            if old.replicas > 0:
                self.actions.append(ScaleDeployment(active, 0))
                self.event(EventType.NORMAL, "Recreate", f"{active} scales to zero before {preview} starts")
            if old.replicas > 0 or old.pods > 0:
                self.enter(Phase.PROGRESSING)
                return self.done()

        state = self.observed.color(preview)
        if not state.exists or state.revision != self.revision or state.replicas != self.replicas:
            self.actions.append(ApplyDeployment(preview, self.replicas))
        if status.preview_started_at is None:
            status.preview_started_at = format_time(self.now)
            self.event(EventType.NORMAL, "Progressing", f"revision {self.revision} starting on {preview}")
        if self.replicas == 0:
            return self.switch()
        if self.is_ready(state):
            return self.verify()
        return self.wait_for_ready(state)

    def wait_for_ready(self, state: ColorState) -> Plan:
        # Failures of pods from an older template say nothing about this revision.
        failure = self.fatal_pod_failure(state.failures) if state.revision == self.revision else None
        if failure is not None:
            return self.fail(failure.reason, f"pod {failure.pod}: {failure.message}")
        started = parse_time(self.status.preview_started_at) or self.now
        timeout = self.rollout.ready_timeout_seconds
        if (self.now - started).total_seconds() >= timeout:
            return self.fail(
                FailureReason.READY_TIMEOUT,
                f"{state.ready}/{self.replicas} pods Ready after {timeout} s (rollout.readyTimeoutSeconds)",
            )
        self.enter(Phase.PROGRESSING)
        self.status.check_passes = 0
        self.status.check_failures = 0
        return self.done()

    def verify(self) -> Plan:
        status = self.status
        if status.phase not in (Phase.VERIFYING, Phase.PAUSED):
            self.enter(Phase.VERIFYING)
            status.check_passes = status.check_failures = 0
            status.last_check_time = None  # the first round is due at once
            return self.done()
        if not self.count_check():
            return self.fail(FailureReason.CHECK_FAILED, self.check_message())
        if status.check_passes < self.rollout.checks.success_threshold:
            return self.done()
        # As in Argo Rollouts, the first revision has nothing to wait beside: it is promoted at once.
        promoted = self.rollout.auto_promote or self.observed.promote == self.revision or status.active_color is None
        if not promoted:
            if status.phase is not Phase.PAUSED:
                self.event(
                    EventType.NORMAL,
                    "Paused",
                    f"revision {self.revision} proven on {status.preview_color}; waiting for `kubectl turnout promote`",
                )
            self.enter(Phase.PAUSED)
            self.condition(ConditionType.PROGRESSING, True, "Paused", "waiting for promotion")
            return self.done()
        return self.switch()

    def switch(self) -> Plan:
        """Point the Service at the proven preview; the old color stays warm through the bake."""
        status = self.status
        preview = status.preview_color
        assert preview is not None
        old_color, old_revision = status.active_color, status.active_revision
        if self.observed.service_color != preview or not self.observed.service_exists:
            self.actions.append(ApplyService(preview))
        self.event(
            EventType.NORMAL,
            "Switched",
            f"Service {self.backend.service_name} now selects {preview} (revision {self.revision})",
        )
        status.active_color, status.active_revision = preview, self.revision
        status.previous_color, status.previous_revision = old_color, old_revision
        status.preview_color = status.preview_revision = None
        status.switched_at = format_time(self.now)
        status.check_passes = status.check_failures = 0
        status.last_check_time = None
        self.condition(ConditionType.ROLLED_BACK, False, "Promoted", f"revision {self.revision} promoted")
        if old_color is None or self.replicas == 0:
            # The first revision has nothing to fall back to: no bake.
            return self.finish_bake()
        self.enter(Phase.BAKING)
        self.condition(ConditionType.PROGRESSING, True, "Baking", f"revision {self.revision} baking on {preview}")
        self.requeue_after = float(min(self.rollout.checks.interval_seconds, max(self.rollout.bake_seconds, 1)))
        return self.done()

    def bake(self) -> Plan:
        """After the switch: keep checking the new color; roll back on failure, else finish."""
        status = self.status
        active, previous = status.active_color, status.previous_color
        assert active is not None
        self.requeue_after = float(self.rollout.checks.interval_seconds)
        if previous is not None and self.observed.service_color == previous:
            # A rollback was carried out but its status not written: finish recording it.
            return self.roll_back_after_switch(FailureReason.CHECK_FAILED, "the Service was found on the old color")
        if self.observed.abort == self.revision:
            return self.fail(FailureReason.ABORTED, "aborted by kubectl turnout abort", force_rollback=True)
        if status.phase is Phase.DEGRADED:
            # Failed after the switch with autoRollback off: held here until a human acts.
            return self.done()
        failure = self.fatal_pod_failure(self.observed.color(active).failures)
        if failure is not None:
            return self.fail(failure.reason, f"pod {failure.pod}: {failure.message}")
        if not self.count_check():
            return self.fail(FailureReason.CHECK_FAILED, self.check_message())
        switched = parse_time(status.switched_at) or self.now
        remaining = self.rollout.bake_seconds - (self.now - switched).total_seconds()
        if remaining > 0:
            self.requeue_after = min(self.requeue_after, remaining)
            self.condition(ConditionType.PROGRESSING, True, "Baking", f"revision {self.revision} baking on {active}")
            return self.done()
        return self.finish_bake()

    def finish_bake(self) -> Plan:
        status = self.status
        self.requeue_after = IDLE_RESYNC_SECONDS
        self.finish(CutoverResult.PROMOTED)
        status.preview_started_at = None
        status.switched_at = status.last_check_time = None
        status.check_passes = status.check_failures = 0
        if status.previous_color is not None:
            due = self.now + timedelta(seconds=self.rollout.scale_down_delay_seconds)
            status.scale_down_at = format_time(due)
        status.phase = Phase.PROGRESSING  # so steady() announces Healthy once
        return self.steady()

    # -- failure ----------------------------------------------------------------------------

    def fail(self, reason: FailureReason, message: str, *, force_rollback: bool = False) -> Plan:
        """The revision in flight failed: roll back if there is something to go back to."""
        status = self.status
        if status.switched_at is not None:
            if status.previous_color is not None and (self.rollout.auto_rollback or force_rollback):
                return self.roll_back_after_switch(reason, message)
            return self.degrade(reason, message)
        if status.active_color is None:
            # The first revision has nothing to roll back to: report and keep waiting.
            return self.degrade(reason, message)
        # Before the switch the Service never moved: a failed preview is always scaled down.
        preview = status.preview_color
        assert preview is not None
        self.actions = [a for a in self.actions if a != ApplyDeployment(preview, self.replicas)]
        if self.observed.color(preview).exists and self.observed.color(preview).replicas > 0:
            self.actions.append(ScaleDeployment(preview, 0))
        active = status.active_color
        if self.observed.color(active).replicas != self.replicas:
            # Recreate scaled the old color down; bring it back.
            self.actions.append(ScaleDeployment(active, self.replicas))
        if self.observed.service_color != active:
            self.actions.append(ApplyService(active))
        status.preview_color = status.preview_revision = None
        return self.record_rollback(reason, message)

    def roll_back_after_switch(self, reason: FailureReason, message: str) -> Plan:
        status = self.status
        failed, previous = status.active_color, status.previous_color
        assert failed is not None
        assert previous is not None
        if self.observed.service_color != previous:
            self.actions.append(ApplyService(previous))
        if self.observed.color(failed).replicas > 0:
            self.actions.append(ScaleDeployment(failed, 0))
        status.active_color, status.active_revision = previous, status.previous_revision
        status.previous_color = status.previous_revision = None
        status.switched_at = None
        return self.record_rollback(reason, message)

    def record_rollback(self, reason: FailureReason, message: str) -> Plan:
        status = self.status
        status.last_failed_revision = self.revision
        status.last_failure_reason = reason.value
        status.last_failure_message = message
        status.preview_started_at = status.last_check_time = None
        status.check_passes = status.check_failures = 0
        status.phase = Phase.DEGRADED
        self.finish(
            CutoverResult.ABORTED if reason is FailureReason.ABORTED else CutoverResult.ROLLED_BACK, reason.value
        )
        text = f"revision {self.revision} rolled back to {status.active_color}: {reason.value}: {message}"
        self.event(EventType.WARNING, "RolledBack", text)
        self.condition(ConditionType.ROLLED_BACK, True, reason.value, text)
        self.condition(ConditionType.DEGRADED, True, reason.value, text)
        self.condition(ConditionType.PROGRESSING, False, "RolledBack", text)
        self.requeue_after = IDLE_RESYNC_SECONDS
        return self.done()

    def degrade(self, reason: FailureReason, message: str) -> Plan:
        """Report a failure that is not rolled back; the cutover keeps going if it can."""
        text = f"revision {self.revision}: {reason.value}: {message}"
        before = [(c.status, c.reason) for c in self.observed.status.conditions if c.type == "Degraded"]
        if before != [("True", reason.value)]:
            self.event(EventType.WARNING, reason.value, text)
        self.status.phase = Phase.DEGRADED
        self.status.check_passes = self.status.check_failures = 0
        self.condition(ConditionType.DEGRADED, True, reason.value, text)
        return self.done()

    # -- observations -----------------------------------------------------------------------

    def switch_was_interrupted(self) -> bool:
        """A switch was carried out but its status never written: the Service is the truth."""
        status = self.status
        return (
            status.preview_color is not None
            and status.preview_revision == self.revision
            and self.observed.service_color == status.preview_color
            and status.phase in (Phase.VERIFYING, Phase.PAUSED)
        )

    def is_ready(self, state: ColorState) -> bool:
        return (
            state.exists
            and state.revision == self.revision
            and state.replicas == self.replicas
            and state.ready >= self.replicas
        )

    def count_check(self) -> bool:
        """Fold this round's check into the counters; False when the failure threshold is reached."""
        check = self.observed.check
        status = self.status
        if check is None:
            return True
        status.last_check_time = format_precise_time(self.now)
        if check.passed:
            status.check_passes += 1
            status.check_failures = 0
            return True
        status.check_failures += 1
        status.check_passes = 0
        return status.check_failures < self.rollout.checks.failure_threshold

    def check_message(self) -> str:
        return self.observed.check.message if self.observed.check else ""

    def fatal_pod_failure(self, failures: tuple[PodFailure, ...]) -> PodFailure | None:
        # The scheduler reports Unschedulable at once, also while a cluster autoscaler adds a node:
        # give it the same grace as failing checks before calling it a failure.
        grace = self.rollout.checks.interval_seconds * self.rollout.checks.failure_threshold
        for failure in failures:
            if failure.reason is not FailureReason.UNSCHEDULABLE:
                return failure
            if failure.since is None or (self.now - failure.since).total_seconds() >= grace:
                return failure
        return None

    def report_active(self) -> None:
        """Replica counts, scale selector and the Ready condition, from the active color."""
        status = self.status
        active = status.active_color
        if active is None:
            status.ready_replicas = 0
            status.selector = None
            self.condition(ConditionType.READY, False, "NotServing", "no revision has been promoted yet")
            return
        state = self.observed.color(active)
        status.replicas = self.observed.color(active).replicas
        status.ready_replicas = state.ready
        # The scale subresource's selector is the very selector of the active color's pods.
        status.selector = ",".join(f"{key}={value}" for key, value in color_selector(self.backend, active).items())
        serving = state.ready > 0
        self.condition(
            ConditionType.READY,
            serving,
            "Serving" if serving else "NoReadyPods",
            f"{state.ready}/{state.replicas} pods of {active} Ready, revision {status.active_revision}",
        )

    # -- bookkeeping ------------------------------------------------------------------------

    def enter(self, phase: Phase) -> None:
        if self.status.phase is not phase and phase in (Phase.VERIFYING,):
            self.event(EventType.NORMAL, phase.value, f"revision {self.revision}: all pods Ready, checking them")
        self.status.phase = phase

    def finish(self, result: CutoverResult, reason: str = "") -> None:
        started = parse_time(self.status.preview_started_at) or parse_time(self.status.switched_at)
        seconds = (self.now - started).total_seconds() if started else 0.0
        self.finished = CutoverFinished(result=result, seconds=seconds, reason=reason)

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.actions.append(RecordEvent(type_, reason, message))

    def condition(self, type_: ConditionType, status: bool, reason: str, message: str) -> None:
        self.status.conditions = set_condition(
            self.status.conditions,
            type_,
            status,
            reason,
            message,
            generation=self.observed.generation,
            now=self.now,
        )

    def done(self) -> Plan:
        self.report_active()
        return Plan(
            actions=tuple(self.actions),
            status=self.status,
            requeue_after=max(self.requeue_after, 0.5),
            finished=self.finished,
        )
