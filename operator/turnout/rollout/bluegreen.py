"""Blue/green: the new revision is proven on the idle color, then the Service moves to it at once.

Phases: Progressing (the preview color scales up) -> Verifying (its pods are checked) ->
[Paused] -> Baking (Service switched, new color still checked, old color warm) -> Healthy.
A failure before the switch scales the preview down (the Service never moved); after it, the
Service goes back to the warm previous color. Either way the revision is remembered in
`lastFailedRevision` and not retried until the spec changes.

Recreate is the same cutover on clusters without a spare GPU: the active color is scaled down
before the preview starts, so there is an outage but never two colors' worth of GPUs.
"""

from __future__ import annotations

from datetime import timedelta

from turnout.api.benchmark import BenchmarkStatus
from turnout.api.labels import ABORT_ANNOTATION, PROMOTE_ANNOTATION
from turnout.api.status import FIRST_COLOR, Color, ConditionType, Phase
from turnout.benchmark.gates import judge as judge_benchmark
from turnout.rollout.actions import (
    ApplyClaim,
    ApplyDeployment,
    ApplyService,
    Benchmarked,
    CutoverResult,
    EventType,
    ScaleDeployment,
    SetRouteWeights,
    SplitService,
)
from turnout.rollout.conditions import format_time, parse_time
from turnout.rollout.observed import ApplyRejection, ColorState, FailureReason
from turnout.rollout.step import IDLE_RESYNC_SECONDS, Plan, Step


class BlueGreen(Step):
    """One reconcile of a blue/green backend."""

    def decide(self) -> Plan:
        self.condition(ConditionType.INVALID_SPEC, False, "Valid", "")
        self.clear_conflict()
        self.warn_exposure()
        storage = self.backend.spec.model.storage
        if storage is not None and storage.create and not self.observed.claim_exists:
            self.actions.append(ApplyClaim())
        status = self.status
        rejected = self.observed.rejected
        if rejected is not None and not self.inspector_refused(rejected):
            return self.refused(rejected)
        if self.switch_was_interrupted():
            return self.switch(status.preview_revision)
        if self.rollback_was_interrupted():
            if self.observed.abort is not None and self.observed.abort == status.active_revision:
                return self.roll_back_to_previous(
                    FailureReason.ABORTED, f"aborted by the {ABORT_ANNOTATION} annotation"
                )
            return self.roll_back_to_previous(FailureReason.CHECK_FAILED, "the Service was found on the old color")
        self.take_retry()
        if self.revision == status.active_revision and status.preview_color is not None and not status.switched_at:
            return self.abandon_preview()
        if status.switched_at is not None and status.active_revision == self.revision:
            return self.bake()
        if self.revision == status.active_revision and status.preview_color is None:
            return self.steady()
        failed = self.revision == status.last_failed_revision and not self.refused_for_gpu_memory()
        if failed and status.preview_color is None and not self.refusal_lifted():
            return self.steady(failed_revision_pending=True)
        return self.cutover()

    # -- the cutover ------------------------------------------------------------------------

    def cutover(self) -> Plan:
        """Move toward the spec's revision: start, continue or restart the preview."""
        status = self.status
        self.interrupt_bake()
        if self.observed.abort == self.revision:
            return self.abort()
        if status.preview_color is not None and status.preview_revision != self.revision:
            self.event(
                EventType.NORMAL,
                "Superseded",
                f"revision {status.preview_revision} abandoned for {self.revision}",
            )
            self.finish(CutoverResult.SUPERSEDED)
            status.preview_started_at = None
            # Passes counted for the abandoned revision prove nothing about this one.
            self.reset_checks()
            self.enter(Phase.PROGRESSING)
        if self.replicas == 0:
            return self.wait_for_replicas()
        if status.preview_started_at is None:
            refused = self.gpu_memory_gate()
            if refused is not None:
                return refused
        if status.preview_color is None:
            # The idle color carries the preview; if it was still warm from the last cutover it is
            # reused as it is when it already runs this revision (a revert is a fast rollback).
            status.preview_color = status.active_color.other if status.active_color else FIRST_COLOR
            status.previous_color = status.previous_revision = status.scale_down_at = None
        status.preview_revision = self.revision
        preview = status.preview_color
        self.condition(ConditionType.PROGRESSING, True, "NewRevision", f"revision {self.revision} on {preview}")
        if status.active_color is not None:
            self.condition(ConditionType.DEGRADED, False, "AsExpected", "")
        self.requeue_after = float(self.rollout.checks.interval_seconds)
        if status.preview_started_at is None and not self.make_room(preview):
            if self.observed.paused:
                return self.held(f"revision {self.revision} waits to start on {preview}")
            self.enter(Phase.PROGRESSING)
            return self.done()

        state = self.observed.color(preview)
        if not state.exists or state.revision != self.revision or state.replicas != self.replicas:
            self.actions.append(ApplyDeployment(preview, self.replicas))
        if status.preview_started_at is None:
            status.preview_started_at = format_time(self.now)
            self.announce_start(preview)
        if self.is_ready(state):
            return self.verify()
        return self.wait_for_ready(state)

    def interrupt_bake(self) -> None:
        """The spec changed during a bake: the baking revision stays, the newest spec wins, and the
        previous color is the only one free to carry it."""
        status = self.status
        if status.switched_at is None:
            return
        self.event(EventType.NORMAL, "BakeInterrupted", f"spec changed to revision {self.revision}")
        self.finish(CutoverResult.SUPERSEDED)
        status.switched_at = None
        status.preview_started_at = None

    def abandon_preview(self) -> Plan:
        """The spec is back at the revision that serves: the preview in flight is dropped, nothing moves."""
        status = self.status
        preview = status.preview_color
        assert preview is not None
        self.event(
            EventType.NORMAL,
            "Superseded",
            f"revision {status.preview_revision} abandoned: the spec is back at {self.revision}, which serves",
        )
        self.finish(CutoverResult.SUPERSEDED)
        if self.observed.color(preview).replicas > 0:
            self.actions.append(ScaleDeployment(preview, 0))
        self.end_preview()
        self.reset_checks(next_round_now=True)
        return self.steady()

    def wait_for_replicas(self) -> Plan:
        """At zero replicas nothing can prove a revision: it waits, and the Service stays where it is."""
        status = self.status
        preview = status.preview_color
        if preview is not None and self.observed.color(preview).replicas > 0:
            self.actions.append(ScaleDeployment(preview, 0))
        self.end_preview()
        self.reset_checks(next_round_now=True)
        self.enter(Phase.PENDING)
        self.condition(
            ConditionType.PROGRESSING,
            True,
            "ScaledToZero",
            f"revision {self.revision} waits for spec.replicas above 0: a revision is proven on running pods",
        )
        return self.done()

    def make_room(self, preview: Color) -> bool:
        """Whether the preview may start now; blue/green runs both colors at once, so always."""
        return True

    def wait_for_ready(self, state: ColorState) -> Plan:
        failure = self.pods_failed(state, self.status.preview_started_at, self.replicas)
        if failure is not None:
            return failure
        self.enter(Phase.PROGRESSING)
        self.reset_checks()
        return self.done()

    def pods_failed(self, state: ColorState, since: str | None, wanted: int) -> Plan | None:
        """The failing plan when the preview's pods fail, or are not `wanted` Ready within the ready
        timeout counted from `since`; None while they may still come."""
        # Failures of pods from an older template say nothing about this revision.
        failure = self.fatal_pod_failure(state.failures) if state.revision == self.revision else None
        if failure is not None:
            return self.fail(failure.reason, f"{failure.kind} {failure.pod}: {failure.message}")
        started = parse_time(since) or self.now
        timeout = self.rollout.ready_timeout_seconds
        if state.ready < wanted and (self.now - started).total_seconds() >= timeout:
            return self.fail(
                FailureReason.READY_TIMEOUT,
                f"{state.ready}/{wanted} pods Ready after {timeout} s (rollout.readyTimeoutSeconds)",
            )
        return None

    def verify(self) -> Plan:
        status = self.status
        done = status.benchmark
        judged = done is not None and done.revision == self.revision and done.verdict is not None
        if status.phase is Phase.BENCHMARKING or (judged and self.degraded_by(FailureReason.BENCHMARK_FAILED)):
            return self.proven()  # proven by the checks already: the benchmark goes on, or stands
        if status.phase not in (Phase.VERIFYING, Phase.PAUSED):
            # A first revision whose checks failed is checked again without a new announcement.
            again = status.phase is Phase.DEGRADED and self.degraded_by(FailureReason.CHECK_FAILED)
            self.enter(Phase.VERIFYING, f"revision {self.revision}: all pods Ready, checking them", announce=not again)
            self.reset_checks(next_round_now=True)
            return self.done()
        changed = self.dimension_change()
        if changed is not None:
            # Not a flaky answer that another round may mend: the model serves vectors of that length.
            return self.fail(FailureReason.EMBEDDING_DIMENSION_CHANGED, changed)
        if not self.count_check():
            return self.fail(FailureReason.CHECK_FAILED, self.check_message())
        if status.check_passes < self.rollout.checks.success_threshold:
            return self.done()
        return self.proven()

    def proven(self) -> Plan:
        """The preview passed its checks: benchmark it if asked, then switch or wait for a promotion."""
        benchmarking = self.benchmark_gate()
        if benchmarking is not None:
            return benchmarking
        status = self.status
        # As in Argo Rollouts, the first revision has nothing to wait beside: it is promoted at once.
        if self.observed.paused and status.active_color is not None:
            return self.held(f"revision {self.revision} proven on {status.preview_color}")
        promoted = self.rollout.auto_promote or self.observed.promote == self.revision or status.active_color is None
        if not promoted:
            self.enter(
                Phase.PAUSED,
                f"revision {self.revision} proven on {status.preview_color}; waiting for promotion: "
                f"kubectl turnout promote {self.backend.name} (sets {PROMOTE_ANNOTATION}={self.revision})",
            )
            self.condition(ConditionType.PROGRESSING, True, "Paused", "waiting for promotion")
            return self.done()
        return self.switch()

    def benchmark_gate(self) -> Plan | None:
        """The plan while the benchmark of `rollout.benchmark` runs or after it failed; None once the
        spec's revision passed it, or when there is none to pass.

        Entering phase Benchmarking asks the next reconcile's observation to run it (one pod of the
        preview, then one of the serving color): its numbers and verdict go to `status.benchmark`.
        """
        spec = self.rollout.benchmark
        status = self.status
        done = status.benchmark
        if spec is None or (
            done is not None and done.revision == self.revision and done.verdict and done.verdict.passed
        ):
            return None
        preview, active = status.preview_color, status.active_color
        assert preview is not None
        if done is not None and done.revision == self.revision and done.verdict is not None:
            # Failed, and nothing to roll back to (a first revision): not run again until the spec changes.
            return self.degrade(FailureReason.BENCHMARK_FAILED, done.verdict.message)
        if status.phase is not Phase.BENCHMARKING:
            then = f", then one of {active}" if active is not None else ""
            self.enter(Phase.BENCHMARKING, f"revision {self.revision}: benchmarking one pod of {preview}{then}")
            self.condition(ConditionType.PROGRESSING, True, "Benchmarking", f"revision {self.revision} on {preview}")
            status.benchmark = BenchmarkStatus(revision=self.revision)
            self.requeue_after = 0.5
            return self.done()
        run = self.observed.benchmark
        if run is None:
            return self.done()  # not run this time: the next reconcile runs it
        if run.new is None:
            return self.fail(FailureReason.BENCHMARK_FAILED, run.problem)
        verdict = judge_benchmark(run.new, run.old, spec)
        results = {preview.value: run.new, **({active.value: run.old} if active is not None else {})}
        status.benchmark = BenchmarkStatus(revision=self.revision, verdict=verdict, **results)
        self.benchmarked = Benchmarked(passed=verdict.passed, new=run.new, old=run.old)
        if not verdict.passed:
            return self.fail(FailureReason.BENCHMARK_FAILED, verdict.message)
        self.event(EventType.NORMAL, "Benchmarked", f"revision {self.revision}: {verdict.message}")
        return None

    def switch(self, revision: str | None = None) -> Plan:
        """Point the Service at the proven preview; the old color stays warm through the bake.

        `revision` is the preview's when the switch is being recorded after the fact (the spec may
        have moved on since); the spec's by default.
        """
        status = self.status
        preview = status.preview_color
        assert preview is not None
        revision = revision or self.revision
        old_color, old_revision = status.active_color, status.active_revision
        if self.observed.service_color != preview or not self.observed.service_exists:
            self.actions.append(ApplyService(preview))
        self.event(
            EventType.NORMAL,
            "Switched",
            f"Service {self.backend.service_name} now selects {preview} (revision {revision})",
        )
        status.active_color, status.active_revision = preview, revision
        status.previous_color, status.previous_revision = old_color, old_revision
        status.preview_color = status.preview_revision = None
        status.canary = None
        status.switched_at = format_time(self.now)
        self.reset_checks(next_round_now=True)
        self.condition(ConditionType.ROLLED_BACK, False, "Promoted", f"revision {revision} promoted")
        if old_color is None or self.replicas == 0:
            # The first revision has nothing to fall back to: no bake.
            return self.finish_bake()
        self.enter(Phase.BAKING)
        self.condition(ConditionType.PROGRESSING, True, "Baking", f"revision {revision} baking on {preview}")
        self.requeue_after = float(min(self.rollout.checks.interval_seconds, max(self.rollout.bake_seconds, 1)))
        return self.done()

    def bake(self) -> Plan:
        """After the switch: keep checking the new color; roll back on failure, else finish."""
        status = self.status
        active = status.active_color
        assert active is not None
        self.requeue_after = float(self.rollout.checks.interval_seconds)
        if self.observed.abort == self.revision:
            return self.abort()
        if status.phase is Phase.DEGRADED:
            # Failed after the switch with autoRollback off: held here until a human acts.
            return self.done()
        failure = self.fatal_pod_failure(self.observed.color(active).failures)
        if failure is not None:
            return self.fail(failure.reason, f"{failure.kind} {failure.pod}: {failure.message}")
        if not self.count_check():
            return self.fail(FailureReason.CHECK_FAILED, self.check_message())
        switched = parse_time(status.switched_at) or self.now
        remaining = self.rollout.bake_seconds - (self.now - switched).total_seconds()
        if remaining > 0 or status.check_failures:
            # A failed round is not forgiven by the clock: the bake ends when the counters decide.
            self.requeue_after = min(self.requeue_after, remaining)
            self.condition(ConditionType.PROGRESSING, True, "Baking", f"revision {self.revision} baking on {active}")
            return self.done()
        return self.finish_bake()

    def finish_bake(self) -> Plan:
        status = self.status
        self.requeue_after = IDLE_RESYNC_SECONDS
        self.finish(CutoverResult.PROMOTED)
        status.preview_started_at = None
        status.switched_at = None
        self.reset_checks(next_round_now=True)
        if status.previous_color is not None:
            due = self.now + timedelta(seconds=self.rollout.scale_down_delay_seconds)
            status.scale_down_at = format_time(due)
        return self.steady()

    # -- failure ----------------------------------------------------------------------------

    def fail(self, reason: FailureReason, message: str, *, force_rollback: bool = False) -> Plan:
        """The revision in flight failed: roll back if there is something to go back to."""
        status = self.status
        if status.switched_at is not None:
            if status.previous_color is not None and (self.rollout.auto_rollback or force_rollback):
                return self.roll_back_to_previous(reason, message)
            return self.degrade(reason, message)
        if status.active_color is None:
            # The first revision has nothing to roll back to: report and keep waiting.
            return self.degrade(reason, message)
        # Before the switch the Service never moved: a failed preview is always scaled down (an
        # abort can come before any preview started).
        preview, active = status.preview_color, status.active_color
        # What this reconcile meant to write for the cutover is dropped: it is undone instead.
        writes = ApplyDeployment | ScaleDeployment | ApplyService | SplitService | SetRouteWeights
        self.actions = [a for a in self.actions if not isinstance(a, writes)]
        self.route_all_to(active)
        if preview is not None and self.observed.color(preview).exists and self.observed.color(preview).replicas > 0:
            self.actions.append(ScaleDeployment(preview, 0))
        if self.observed.color(active).replicas != self.replicas:
            # Recreate, or a canary, scaled the old color down; bring it back.
            self.actions.append(ScaleDeployment(active, self.replicas))
        status.preview_color = status.preview_revision = None
        return self.record_rollback(reason, message)

    def refused(self, rejection: ApplyRejection) -> Plan:
        """The API server refused a write for good: a new revision fails (rolled back, or reported when
        it is the first), anything else is reported; neither is tried again until the spec changes."""
        text = f"the API server refused {rejection.what}: {rejection.message}"
        status = self.status
        if self.revision != status.active_revision and status.switched_at is None:
            if status.active_color is not None:
                status.preview_color = status.preview_color or status.active_color.other
                status.preview_revision = self.revision
                return self.fail(FailureReason.APPLY_FAILED, text)
            # A first revision has nothing to go back to: it waits for a spec the API server takes.
            status.preview_color = status.preview_revision = status.preview_started_at = None
            self.remember_failure(self.revision, FailureReason.APPLY_FAILED, text)
        return self.degrade(FailureReason.APPLY_FAILED, text)

    def abort(self) -> Plan:
        """A person aborted this revision: back to the old color, even with autoRollback off."""
        return self.fail(FailureReason.ABORTED, f"aborted by the {ABORT_ANNOTATION} annotation", force_rollback=True)

    # -- observations -----------------------------------------------------------------------

    def rollback_was_interrupted(self) -> bool:
        """A rollback to the previous color was carried out but its status never written: recorded
        before anything else, so a newer spec never goes to the color that serves again."""
        status = self.status
        return (
            status.active_color is not None
            and status.previous_color is not None
            and self.observed.service_exists
            and self.observed.service_color == status.previous_color
        )

    def switch_was_interrupted(self) -> bool:
        """A switch was carried out but its status never written: the Service is the truth.

        Recorded before anything else, even when the spec has changed since: the preview color
        now serves, so it must never be given a new template in place.
        """
        status = self.status
        preview = status.preview_color
        return (
            preview is not None
            and status.preview_revision is not None
            and self.observed.service_color == preview
            and self.observed.color(preview).revision == status.preview_revision
            and status.phase in (Phase.VERIFYING, Phase.PAUSED, Phase.CANARY)
        )


class Recreate(BlueGreen):
    """Blue/green without the spare GPUs: the active color goes to zero before the preview starts."""

    def make_room(self, preview: Color) -> bool:
        active = self.status.active_color
        if active is None:
            return True
        old = self.observed.color(active)
        if old.replicas > 0 and self.observed.paused:
            return False  # scaling the serving color down is the outage a pause holds back
        if old.replicas > 0:
            self.actions.append(ScaleDeployment(active, 0))
            self.event(EventType.NORMAL, "Recreate", f"{active} scales to zero before {preview} starts")
        return old.replicas == 0 and old.pods == 0
