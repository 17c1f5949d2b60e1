"""What every strategy shares: one reconcile's decision under way, and its bookkeeping.

A `Step` collects the actions and the next status while a strategy walks its decision. It owns
what does not depend on how traffic moves: phases and their Events, conditions, counting check
rounds, recording a rollback or a failure, the steady state (active color at its replicas, the
Service on it, the previous color retired after its delay) and the status the scale subresource
reads. A strategy (`bluegreen.py`, ...) subclasses it and implements `decide()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import timedelta

from turnout.api.backend import Backend
from turnout.api.labels import ABORT_ANNOTATION, PAUSE_ANNOTATION, RETRY_ANNOTATION, color_selector, inspector_name
from turnout.api.spec import ServiceType
from turnout.api.status import Color, ConditionType, InferenceBackendStatus, Phase, ServedModel
from turnout.engines.model_files import model_directory
from turnout.rollout.actions import (
    Action,
    ApplyDeployment,
    ApplyService,
    Benchmarked,
    CreateInspector,
    CutoverFinished,
    CutoverResult,
    DeleteInspector,
    EventType,
    RecordEvent,
    RecordRevision,
    ScaleDeployment,
)
from turnout.rollout.conditions import (
    bounded,
    condition_status,
    format_precise_time,
    format_time,
    parse_time,
    set_condition,
)
from turnout.rollout.gpu_memory import gpu_memory_status
from turnout.rollout.model_config import (
    INSPECTION_SECONDS,
    INSPECTOR_POLL_SECONDS,
    model_config_pending,
    recorded,
    started,
    timed_out,
    unsure,
)
from turnout.rollout.observed import ApplyRejection, ColorState, FailureReason, Observed, PodFailure

IDLE_RESYNC_SECONDS = 60.0
"""How often a backend with nothing in flight is looked at again (reads only)."""

# Phases whose start is news for the people watching (`kubectl describe ib`). The others are
# announced by what causes them: Progressing by the new revision, Baking by the switch, Degraded
# by the failure itself.
_ANNOUNCED_PHASES = frozenset({Phase.VERIFYING, Phase.PAUSED, Phase.HEALTHY})
# Failures of a color's pods themselves: a rollback for one of them has nothing on that color to drain.
POD_FAILURES = frozenset(
    {
        FailureReason.READY_TIMEOUT,
        FailureReason.IMAGE_PULL_BACK_OFF,
        FailureReason.CRASH_LOOP_BACK_OFF,
        FailureReason.OOM_KILLED,
        FailureReason.UNSCHEDULABLE,
        FailureReason.CREATE_CONTAINER_CONFIG_ERROR,
        FailureReason.FAILED_CREATE,
    }
)


@dataclass(frozen=True)
class Plan:
    """What to do now, the status to write after it, and when to look again (seconds)."""

    actions: tuple[Action, ...]
    status: InferenceBackendStatus
    requeue_after: float
    finished: CutoverFinished | None = None
    serving_failed: str | None = None
    """The reason, when the revision that serves failed its checks in this step (for the metrics)."""
    benchmarked: Benchmarked | None = None
    """A benchmark gate judged in this step (for the metrics)."""


class Step(ABC):
    """One reconcile of one backend: the observed world in, actions and the next status out."""

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
        self.serving_failed: str | None = None
        self.benchmarked: Benchmarked | None = None
        self.keeps_inspector = False
        """This step waits for the spec's revision's inspector pod: it is not deleted."""

    @abstractmethod
    def decide(self) -> Plan:
        """Walk the strategy's decision and return the plan (through `done()`)."""

    # -- steady state ---------------------------------------------------------------------------

    def steady(self, *, failed_revision_pending: bool = False) -> Plan:
        """Keep the active color at its replicas, the Service on it, and retire the previous color."""
        status = self.status
        active = status.active_color
        if active is None:
            # Only reachable when the spec names a revision that failed before anything served.
            self.enter(Phase.DEGRADED)
            return self.done()
        state = self.observed.color(active)
        refused = self.refused_for_this_spec()
        if refused:
            pass  # the API server refused this spec's objects: asking again changes nothing
        elif self.revision == status.active_revision:
            if not state.exists or state.replicas != self.replicas or state.revision != self.revision:
                self.actions.append(ApplyDeployment(active, self.replicas))
        elif state.replicas != self.replicas:
            # The spec names a failed revision: the active color keeps its own template.
            self.actions.append(ScaleDeployment(active, self.replicas))
        service_off = (
            self.observed.service_color != active
            or not self.observed.service_exists
            or not self.observed.service_current
        )
        if not refused and service_off and ApplyService(active) not in self.actions:
            self.actions.append(ApplyService(active))
        if active.other != status.previous_color and self.observed.color(active.other).replicas > 0:
            # Left over by an abandoned cutover: an idle color holds no GPUs.
            self.actions.append(ScaleDeployment(active.other, 0))
        failing = self.judge_serving()
        if (
            failing is not None
            and status.previous_color is not None
            and status.previous_revision != status.last_failed_revision
            and self.rollout.auto_rollback
        ):
            # Still warm within its scale-down delay: the previous revision takes the traffic back.
            self.serving_failed = FailureReason.CHECK_FAILED.value
            return self.roll_back_to_previous(FailureReason.CHECK_FAILED, failing)
        self.retire_previous()
        self.requeue_after = min(self.requeue_after, self.serving_check_interval())

        if failing is not None:
            text = f"revision {status.active_revision} on {active} fails its checks: {failing}"
            if not self.serving_fails(self.observed.status):
                self.serving_failed = FailureReason.CHECK_FAILED.value
                self.event(EventType.WARNING, FailureReason.CHECK_FAILED.value, text)
            self.enter(Phase.DEGRADED)
            self.condition(ConditionType.DEGRADED, True, FailureReason.CHECK_FAILED.value, text)
        elif self.serving_fails(status) or refused:
            self.enter(Phase.DEGRADED)  # the Degraded condition still says why
        elif failed_revision_pending:
            self.enter(Phase.DEGRADED)
            self.condition(
                ConditionType.DEGRADED,
                True,
                status.last_failure_reason or "RolledBack",
                f"revision {self.revision} failed and is not retried until the spec changes: "
                f"{status.last_failure_message or ''}".rstrip(": "),
            )
        elif self.replicas > 0 and state.ready == 0:
            self.enter(Phase.DEGRADED)
            self.condition(ConditionType.DEGRADED, True, "NoReadyPods", f"no pod of {active} is Ready")
        else:
            self.enter(Phase.HEALTHY, f"revision {status.active_revision} serves on {active}")
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

    def judge_serving(self) -> str | None:
        """Fold this reconcile's round of checks of the serving color into the counters; the round's
        failure message when `failureThreshold` rounds in a row have failed, else None.

        A passing round while nothing failed changes no status field, so a healthy backend costs no
        write; such rounds are paced by the requeue (`checks.healthyIntervalSeconds`). Likewise a
        failing round once the revision is judged failing: the verdict stands and the counters stay,
        so a Degraded backend at rest costs no write either (rounds paced by `checks.intervalSeconds`).
        """
        status = self.status
        check = self.observed.check
        if check is None:
            return None
        if check.passed:
            if status.check_failures:
                self.reset_checks(next_round_now=True)
            return None
        if self.serving_fails(status):
            return check.message
        status.last_check_time = format_precise_time(self.now)
        status.check_passes = 0
        status.check_failures += 1
        if status.check_failures < self.rollout.checks.failure_threshold:
            return None
        return check.message

    def serving_fails(self, status: InferenceBackendStatus) -> bool:
        """In `status`, the serving revision has failed `failureThreshold` rounds in a row, none passed since."""
        return (
            status.active_color is not None
            and status.preview_color is None
            and status.switched_at is None
            and status.check_failures >= self.rollout.checks.failure_threshold
        )

    def serving_check_interval(self) -> float:
        """Seconds until the serving color's next round: slow while it passes, quick once it failed."""
        if self.status.check_failures:
            return float(self.rollout.checks.interval_seconds)
        return float(self.rollout.checks.healthy_interval_seconds)

    # -- traffic ----------------------------------------------------------------------------

    def route_all_to(self, color: Color) -> None:
        """All traffic to `color` (a strategy that routes otherwise adds its own)."""
        self.select_only(color)

    def select_only(self, color: Color) -> None:
        """The stable Service selects the pods of `color` alone."""
        if self.observed.service_color != color or self.observed.service_split or not self.observed.service_exists:
            self.actions.append(ApplyService(color))

    # -- failure ----------------------------------------------------------------------------

    def roll_back_to_previous(self, reason: FailureReason, message: str) -> Plan:
        """The revision that serves failed: the Service goes back to the previous, still warm color."""
        status = self.status
        failed, previous = status.active_color, status.previous_color
        assert failed is not None
        assert previous is not None
        self.route_all_to(previous)
        if self.observed.color(previous).replicas != self.replicas:
            self.actions.append(ScaleDeployment(previous, self.replicas))
        failed_revision = status.active_revision
        status.active_color, status.active_revision = previous, status.previous_revision
        status.switched_at = None
        delay = self.rollout.scale_down_delay_seconds
        if self.failing_outright(failed, reason) or delay == 0:
            if self.observed.color(failed).replicas > 0:
                self.actions.append(ScaleDeployment(failed, 0))
            status.previous_color = status.previous_revision = status.scale_down_at = None
        else:
            # Like the old color after a promotion: what clients still send it, and the streams open
            # on it, are answered through the scale-down delay, and then through its pods' drain.
            status.previous_color, status.previous_revision = failed, failed_revision
            status.scale_down_at = format_time(self.now + timedelta(seconds=delay))
        return self.record_rollback(reason, message, revision=failed_revision)

    def failing_outright(self, color: Color, reason: FailureReason) -> bool:
        """Nothing served on `color` is worth draining: none of its pods is Ready (a dead engine fails
        its readiness probe), or its pods fail (crash loop, OOM kill, ...)."""
        state = self.observed.color(color)
        return reason in POD_FAILURES or state.ready == 0 or bool(state.failures)

    def record_rollback(self, reason: FailureReason, message: str, *, revision: str | None = None) -> Plan:
        """Remember the revision (the spec's unless named) as failed, say why everywhere people look,
        and stop checking it."""
        status = self.status
        failed = revision or self.revision
        self.remember_failure(failed, reason, message)
        status.preview_started_at = None
        status.canary = None
        self.reset_checks(next_round_now=True)
        self.enter(Phase.DEGRADED)
        self.finish(
            CutoverResult.ABORTED if reason is FailureReason.ABORTED else CutoverResult.ROLLED_BACK, reason.value
        )
        text = f"revision {failed} rolled back to {status.active_color}: {reason.value}: {message}"
        self.event(EventType.WARNING, "RolledBack", text)
        self.condition(ConditionType.ROLLED_BACK, True, reason.value, text)
        self.condition(ConditionType.DEGRADED, True, reason.value, text)
        self.condition(ConditionType.PROGRESSING, False, "RolledBack", text)
        self.requeue_after = IDLE_RESYNC_SECONDS
        due = parse_time(status.scale_down_at)
        if due is not None:
            self.requeue_after = min(self.requeue_after, (due - self.now).total_seconds())
        return self.done()

    def remember_failure(self, revision: str, reason: FailureReason, message: str) -> None:
        """Record `revision` as failed, not to be tried again until the spec changes, and why."""
        self.status.last_failed_revision = revision
        self.status.last_failure_reason = reason.value
        self.status.last_failure_message = bounded(message)

    def degrade(self, reason: FailureReason, message: str) -> Plan:
        """Report a failure that is not rolled back; the cutover keeps going if it can."""
        text = f"revision {self.revision}: {reason.value}: {message}"
        if not self.degraded_by(reason):
            self.event(EventType.WARNING, reason.value, text)
        self.enter(Phase.DEGRADED)
        self.reset_checks()
        self.condition(ConditionType.DEGRADED, True, reason.value, text)
        return self.done()

    def gpu_memory_gate(self) -> Plan | None:
        """Before the spec's revision gets any pod: estimate its GPU memory into the status and, when it
        cannot fit where its pods can land, refuse to start it (InsufficientGPUMemory); None to go on.

        Remembered as the failed revision, but judged again at every reconcile (see `decide`): the facts
        it rests on (`model.architecture`, `resources.gpuMemory`, the nodes' labels) are no part of the
        revision, so it starts, and is forgotten as failed, once they say it fits.
        """
        status = self.status
        reading = self.read_model_config()
        if reading is not None:
            return reading
        estimate = gpu_memory_status(self.backend, self.observed.gpu_nodes, status)
        status.gpu_memory = estimate
        reason = FailureReason.INSUFFICIENT_GPU_MEMORY
        if estimate is None or estimate.fits is not False:
            if self.refused_for_gpu_memory():
                status.last_failed_revision = status.last_failure_reason = status.last_failure_message = None
            return None
        text = f"revision {self.revision}: {reason.value}: {estimate.message}"
        self.wait_without_preview()
        if not self.degraded_by(reason):
            self.event(EventType.WARNING, reason.value, text)
        self.remember_failure(self.revision, reason, estimate.message)
        self.reset_checks(next_round_now=True)
        self.condition(ConditionType.DEGRADED, True, reason.value, text)
        self.condition(ConditionType.PROGRESSING, False, reason.value, text)
        return self.steady(failed_revision_pending=True)

    def read_model_config(self) -> Plan | None:
        """Before the estimate of a vLLM revision on a claim without `model.architecture`: its model's
        files are read from the claim by an inspector pod, once (`rollout/model_config.py`). A plan that
        waits for the inspector; None when the reading is over (with facts or with why there are none)."""
        backend, status = self.backend, self.status
        if not model_config_pending(backend, status):
            return None
        reading = status.model_files
        if reading is None or reading.revision != self.revision or reading.started_at is None:
            reading = status.model_files = started(self.revision, format_time(self.now))
        directory = model_directory(backend.model_name, backend.model_mount_path)
        mine = [pod for pod in self.observed.inspectors if pod.revision == self.revision]
        failures = [failure for pod in mine for failure in pod.failures]
        # Not scheduled yet may pass (a claim binding, a node coming up); the bound says when to stop waiting.
        fatal = [failure for failure in failures if failure.reason is not FailureReason.UNSCHEDULABLE]
        read = self.observed.model_files
        claim = f"claim {backend.claim_name}"
        storage = backend.spec.model.storage
        if isinstance(directory, str):
            status.model_files = unsure(reading, directory)
        elif storage is not None and storage.create and not self.observed.claim_exists:
            status.model_files = unsure(reading, f"{claim} is created now: the model is not on it yet")
        elif self.inspector_refused(self.observed.rejected):
            assert self.observed.rejected is not None
            status.model_files = unsure(
                reading, f"the API server refused the inspector pod for {claim}: {self.observed.rejected.message}"
            )
        elif read is not None and not read.retry:
            status.model_files = recorded(reading, read)
        elif fatal:
            status.model_files = unsure(reading, f"the inspector pod for {claim} failed: {fatal[0].message}")
        elif timed_out(self.now, parse_time(reading.started_at)):
            why = read.problem if read is not None and read.problem else "it was not Ready"
            why = failures[0].message if failures else why
            status.model_files = unsure(
                reading,
                f"the inspector pod for {claim} did not serve the model's files within {INSPECTION_SECONDS} s ({why})",
            )
        if not model_config_pending(backend, status):
            return None
        if not mine:
            self.actions.append(CreateInspector())
        self.keeps_inspector = True
        self.wait_without_preview()
        self.enter(Phase.PROGRESSING)
        message = (
            f"revision {self.revision}: reading the model's config.json from {claim} (pod {inspector_name(backend)})"
        )
        self.condition(ConditionType.PROGRESSING, True, "ReadingModelConfig", message)
        self.requeue_after = INSPECTOR_POLL_SECONDS
        return self.done()

    def inspector_refused(self, rejected: ApplyRejection | None) -> bool:
        """The API server refused the inspector pod in this reconcile (the reading goes on without it)."""
        return rejected is not None and rejected.what == f"Pod {inspector_name(self.backend)}"

    def wait_without_preview(self) -> None:
        """The spec's revision waits before its pods: a superseded preview gives its GPUs back meanwhile."""
        status = self.status
        preview, active = status.preview_color, status.active_color
        if preview is not None and active is not None:
            self.route_all_to(active)  # a superseded canary's share goes back first; steady() scales it down
        elif preview is not None and self.observed.color(preview).replicas > 0:
            self.actions.append(ScaleDeployment(preview, 0))  # a superseded first preview holds no GPUs meanwhile
        self.end_preview()

    def refused_for_gpu_memory(self) -> bool:
        """The spec's revision is the failed one, refused by the GPU memory estimate (judged again each time)."""
        status = self.status
        return (
            status.last_failed_revision == self.revision
            and status.last_failure_reason == FailureReason.INSUFFICIENT_GPU_MEMORY.value
        )

    # -- observations -----------------------------------------------------------------------

    def is_ready(self, state: ColorState) -> bool:
        """All of the color's pods run this revision and are Ready."""
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
        """The first pod failure that condemns the revision now, if any."""
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
        """Replica counts, scale selector, what is served and the Ready condition, from the active color."""
        status = self.status
        self.report_served()
        active = status.active_color
        if active is None:
            status.ready_replicas = 0
            status.selector = None
            self.condition(ConditionType.READY, False, "NotServing", "no revision has been promoted yet")
            return
        state = self.observed.color(active)
        status.replicas = state.replicas
        status.ready_replicas = state.ready
        # The scale subresource's selector is the very selector of the active color's pods.
        status.selector = ",".join(f"{key}={value}" for key, value in color_selector(self.backend, active).items())
        counts = f"{state.ready}/{state.replicas} pods of {active} Ready, revision {status.active_revision}"
        if self.serving_fails(status):
            self.condition(
                ConditionType.READY, False, FailureReason.CHECK_FAILED.value, f"{counts}, failing its checks"
            )
            return
        serving = state.ready > 0
        self.condition(ConditionType.READY, serving, "Serving" if serving else "NoReadyPods", counts)

    def report_served(self) -> None:
        """Remember what the spec's revision serves while the status names it, and show the active one's."""
        status = self.status
        named = {status.active_revision, status.preview_revision, status.previous_revision} - {None}
        served = {found.revision: found for found in status.served_models if found.revision in named}
        if self.revision in named:
            known = served.get(self.revision)
            served[self.revision] = ServedModel(
                revision=self.revision,
                engine=self.backend.engine.value,
                model=self.backend.model_name,
                embedding_dimension=self.measured_dimension() or (known.embedding_dimension if known else None),
            )
        status.served_models = sorted(served.values(), key=lambda found: found.revision)
        active = served.get(status.active_revision or "")
        status.active_engine = active.engine if active else None
        status.active_model = active.model if active else None

    def measured_dimension(self) -> int | None:
        """The length of the vectors the spec's revision answered in this reconcile's round, if it measured one."""
        check = self.observed.check
        return check.embedding_dimension if check is not None and check.passed else None

    def dimension_change(self) -> str | None:
        """Why the spec's revision may not take the traffic: its vectors (measured in this round) have another
        length than those of the revision that serves, and `rollout.allowDimensionChange` is off. None when
        they may, or when either length is unknown (a chat model, or a serving revision never measured)."""
        status = self.status
        new = self.measured_dimension()
        if new is None or self.rollout.allow_dimension_change or status.active_revision in (None, self.revision):
            return None
        serving = next((m for m in status.served_models if m.revision == status.active_revision), None)
        old = serving.embedding_dimension if serving is not None else None
        if old is None or old == new:
            return None
        return (
            f"revision {self.revision} answers embeddings of dimension {new}, the serving revision "
            f"{status.active_revision} of dimension {old}: clients' vector indexes hold vectors of dimension {old} "
            f"and would break. Serve a model of dimension {old}, or set rollout.allowDimensionChange: true "
            "once the clients re-index"
        )

    def refusal_lifted(self) -> bool:
        """The spec's revision failed only for a change of dimension, which `rollout.allowDimensionChange`
        now allows: it is tried again, though its revision is the same (rollout settings are not in it)."""
        return (
            self.status.last_failure_reason == FailureReason.EMBEDDING_DIMENSION_CHANGED.value
            and self.rollout.allow_dimension_change
        )

    def refused_for_this_spec(self) -> bool:
        """The API server refused a write for the spec generation being reconciled (not a failed revision's)."""
        return self.status.last_failed_revision != self.revision and any(
            (c.type, c.status, c.reason, c.observed_generation)
            == (ConditionType.DEGRADED.value, "True", FailureReason.APPLY_FAILED.value, self.observed.generation)
            for c in self.status.conditions
        )

    def warn_exposure(self) -> None:
        """A LoadBalancer in front of an engine that takes no API key is open to whoever reaches it:
        say so once (Warning Event) and keep saying it in the Exposed condition while it lasts."""
        spec = self.backend.spec
        profile = self.backend.profile
        open_to_all = spec.service.type is ServiceType.LOAD_BALANCER and profile.api_key_ref(spec) is None
        was = condition_status(self.status.conditions, ConditionType.EXPOSED) == "True"
        if not open_to_all:
            if was:
                self.condition(ConditionType.EXPOSED, False, "NotExposed", "")
            return
        remedy = (
            f"set {profile.api_key_field}"
            if profile.api_key_field
            else f"engine {spec.engine.value} has no authentication: use service.type ClusterIP behind an "
            "authenticating gateway, or engine vllm with vllm.apiKeySecretRef"
        )
        message = (
            f"Service {self.backend.service_name} is a LoadBalancer and nothing asks its clients for a key: "
            f"anyone who reaches its address can use the engine; {remedy}"
        )
        if not was:
            self.event(EventType.WARNING, "UnauthenticatedLoadBalancer", message)
        self.condition(ConditionType.EXPOSED, True, "UnauthenticatedLoadBalancer", message)

    def clear_conflict(self) -> None:
        """A conflict reported earlier is over (the Conflict condition exists only once there was one)."""
        if condition_status(self.status.conditions, ConditionType.CONFLICT) == "True":
            self.condition(ConditionType.CONFLICT, False, "Resolved", "")
            self.condition(ConditionType.DEGRADED, False, "AsExpected", "")

    def degraded_by(self, reason: FailureReason) -> bool:
        """The Degraded condition is True for `reason`."""
        return any(
            (c.type, c.status, c.reason) == (ConditionType.DEGRADED.value, "True", reason.value)
            for c in self.status.conditions
        )

    # -- bookkeeping ------------------------------------------------------------------------

    def enter(self, phase: Phase, message: str = "", *, announce: bool = True) -> None:
        """Set the phase; a phase worth announcing gets its one Event when this reconcile changes it.

        The comparison is with the phase this reconcile found, so passing through a phase twice
        within one decision, or staying in it across reconciles, announces nothing more.
        `announce=False` for a return to a phase already announced for this revision.
        """
        announced = not announce or self.status.phase is phase or self.observed.status.phase is phase
        self.status.phase = phase
        if phase in _ANNOUNCED_PHASES and not announced:
            self.event(EventType.NORMAL, phase.value, message)

    def announce_start(self, color: Color) -> None:
        """A cutover to the spec's revision starts on `color`: said, and the revision kept in history."""
        self.event(EventType.NORMAL, "Progressing", f"revision {self.revision} starting on {color}")
        status = self.status
        keep = tuple(r for r in (status.active_revision, status.previous_revision) if r is not None)
        self.actions.append(RecordRevision(change_cause=self.observed.change_cause, keep=keep))

    def held(self, where: str) -> Plan:
        """The cutover waits where it is, before traffic moves, until `turnout.dev/pause` is removed;
        its checks and analysis go on, and a failure still rolls it back."""
        message = f"{where}; held by the {PAUSE_ANNOTATION} annotation: kubectl turnout resume {self.backend.name}"
        self.enter(Phase.PAUSED, message)
        self.condition(ConditionType.PROGRESSING, True, "PausedByUser", message)
        return self.done()

    def take_retry(self) -> None:
        """Act once on a new `turnout.dev/retry` annotation (`<revision>@<when>`): a spec whose
        revision failed is tried again as if it were new; any other value is said to be ignored."""
        value = self.observed.retry
        status = self.status
        if value is None or value == status.last_retry:
            return
        status.last_retry = value
        revision = value.split("@", 1)[0]
        failed_benchmark = (
            status.benchmark is not None
            and status.benchmark.revision == self.revision
            and status.benchmark.verdict is not None
            and not status.benchmark.verdict.passed
        )
        failed = status.preview_color is None and status.last_failed_revision == self.revision
        why = ""
        if revision != self.revision:
            why = f"the spec's revision is {self.revision}"
        elif not (failed or failed_benchmark):
            why = f"revision {self.revision} has not failed"
        elif self.observed.abort == self.revision:
            why = f"the {ABORT_ANNOTATION} annotation still names it; remove it first"
        if why:
            self.event(EventType.WARNING, "RetryIgnored", f"{RETRY_ANNOTATION}={value} ignored: {why}")
            return
        self.event(
            EventType.NORMAL,
            "Retrying",
            f"revision {self.revision} tried again ({RETRY_ANNOTATION}); it failed with "
            f"{status.last_failure_reason or 'BenchmarkFailed'}: {status.last_failure_message or ''}".rstrip(": "),
        )
        if failed:
            status.last_failed_revision = None
        if failed_benchmark:
            status.benchmark = None
        self.reset_checks(next_round_now=True)

    def end_preview(self) -> None:
        """No revision is being proven any more (the spec went back, or to zero replicas)."""
        status = self.status
        status.preview_color = status.preview_revision = status.preview_started_at = None
        status.canary = None

    def reset_checks(self, *, next_round_now: bool = False) -> None:
        """Start counting check rounds afresh; `next_round_now` makes the next round due at once."""
        self.status.check_passes = self.status.check_failures = 0
        if next_round_now:
            self.status.last_check_time = None

    def finish(self, result: CutoverResult, reason: str = "") -> None:
        """Record that the cutover in flight ended, for the metrics."""
        started = parse_time(self.status.preview_started_at) or parse_time(self.status.switched_at)
        seconds = (self.now - started).total_seconds() if started else 0.0
        self.finished = CutoverFinished(result=result, seconds=seconds, reason=reason)

    def event(self, type_: EventType, reason: str, message: str) -> None:
        self.actions.append(RecordEvent(type_, reason, bounded(message)))

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
        """The plan of this reconcile, with the active color's numbers reported, and the inspector pods
        it does not wait for deleted."""
        self.report_active()
        for pod in self.observed.inspectors:
            wanted = self.keeps_inspector and pod.revision == self.revision
            if not pod.deleting and not wanted and DeleteInspector(pod.name) not in self.actions:
                self.actions.append(DeleteInspector(pod.name))
        return Plan(
            actions=tuple(self.actions),
            status=self.status,
            requeue_after=max(self.requeue_after, 0.5),
            finished=self.finished,
            serving_failed=self.serving_failed,
            benchmarked=self.benchmarked,
        )
