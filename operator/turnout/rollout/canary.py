"""Canary: the new revision takes the traffic in steps, each judged on real traffic before the next.

Phases: Progressing (the canary's first pods start, within `canary.maxSurge`) -> Verifying (its
pods are checked; no traffic yet) -> Canary (a step in effect, its traffic judged every check
round) or Paused (a pause that waits for a promotion) -> Baking (all traffic on the new revision,
the stable pods still warm) -> Healthy. A first revision has nothing to compare with: it is proven
and promoted as in blue/green.

Without a mesh the stable Service selects both colors, so a color's share of the traffic is its
share of the Ready pods: a step's weight becomes pod counts (`pod_split`), reached without ever
running more than `replicas + maxSurge` pods (`scale_toward`).

Any failure (a pod, a check round, the analysis, the abort annotation) puts all traffic back on the
stable color at once, scales the canary down and remembers the revision as failed, as blue/green
does before its switch. A spec change restarts the canary from its first step; everything a step
needs is in the status, so a restarted operator resumes at the step it was at.
"""

from __future__ import annotations

from dataclasses import dataclass

from turnout.api.labels import PROMOTE_ANNOTATION
from turnout.api.spec import Canary as CanarySpec
from turnout.api.spec import CanaryStep
from turnout.api.status import (
    AnalysisStatus,
    CanaryStatus,
    Color,
    ColorTraffic,
    ConditionType,
    MetricValue,
    Phase,
    TrafficBaseline,
)
from turnout.api.traffic import TrafficCounters
from turnout.rollout.actions import (
    ApplyColorServices,
    ApplyDeployment,
    CutoverResult,
    EventType,
    ScaleDeployment,
    SetRouteWeights,
    SplitService,
)
from turnout.rollout.analysis import Measurement, Outcome, Verdict, judge, judge_metrics
from turnout.rollout.bluegreen import BlueGreen
from turnout.rollout.conditions import bounded, condition_status, format_precise_time, format_time, parse_time
from turnout.rollout.observed import ColorState, FailureReason
from turnout.rollout.step import Plan

FULL_WEIGHT = 100


@dataclass(frozen=True)
class Split:
    """Pods of each color."""

    canary: int
    stable: int

    def share(self) -> float:
        """The canary's share of these pods, in percent."""
        total = self.canary + self.stable
        return 100.0 * self.canary / total if total else 0.0


def pod_split(replicas: int, weight: int, max_surge: int) -> Split:
    """Pods of each color whose canary share is closest to `weight` percent.

    Both colors keep at least one pod below 100 %, together never fewer than `replicas` (the
    capacity clients had) nor more than `replicas + max_surge` (the GPUs the cluster can spare).
    Of equally close splits, the one with more pods serving wins. At 0 % the stable color has all
    `replicas`; at 100 % the canary has them and the stable color keeps what the surge allows warm.
    """
    if weight <= 0:
        return Split(0, replicas)
    if weight >= FULL_WEIGHT:
        return Split(replicas, min(replicas, max_surge))
    capacity = replicas + max_surge
    best: tuple[float, int, Split] | None = None
    for canary in range(1, min(replicas, capacity - 1) + 1):
        ideal = canary * (FULL_WEIGHT - weight) / weight
        for stable in {int(ideal), int(ideal) + 1}:
            stable = max(1, replicas - canary, min(stable, replicas, capacity - canary))
            if stable > replicas or canary + stable > capacity:
                continue
            split = Split(canary, stable)
            key = (round(abs(split.share() - weight), 9), -(canary + stable), split)
            if best is None or key[:2] < best[:2]:
                best = key
    assert best is not None, (replicas, weight, max_surge)
    return best[2]


def scale_toward(target: Split, canary: ColorState, stable: ColorState, capacity: int) -> Split:
    """The replicas to set now on each color on the way to `target`.

    Never more than `capacity` pods at once, counting pods that still terminate: each color grows
    only into room the other has left. The stable color shrinks once canary pods are Ready
    to take its share, or, when there is no room for the next canary pod, to make that room.
    """
    stable_pods = max(stable.pods, stable.replicas)
    if canary.replicas >= target.canary:
        canary_now = target.canary
    else:
        canary_now = max(canary.replicas, min(target.canary, capacity - stable_pods))
    if stable.replicas <= target.stable:
        # A step can ask for one more stable pod (a closer share): it comes when there is room.
        stable_now = max(stable.replicas, min(target.stable, capacity - max(canary.pods, canary_now)))
    else:
        next_canary = min(target.canary, canary.replicas + 1)
        keep = target.canary + target.stable - min(canary.ready, target.canary)
        stable_now = max(target.stable, min(stable.replicas, capacity - next_canary, keep))
    return Split(canary_now, stable_now)


class Canary(BlueGreen):
    """One reconcile of a canary backend."""

    @property
    def spec(self) -> CanarySpec:
        canary = self.rollout.canary
        assert canary is not None, "strategy Canary without canary is refused by validation"
        return canary

    def decide(self) -> Plan:
        self.report_route()
        return super().decide()

    def steady(self, *, failed_revision_pending: bool = False) -> Plan:
        active = self.status.active_color
        if active is not None and self.backend.http_route is not None and self.revision == self.status.active_revision:
            self.set_route_weights(active, FULL_WEIGHT)
        return super().steady(failed_revision_pending=failed_revision_pending)

    def switch(self, revision: str | None = None) -> Plan:
        if self.backend.http_route is not None:
            self.set_route_weights(self.preview, FULL_WEIGHT)
        return super().switch(revision)

    def cutover(self) -> Plan:
        status = self.status
        if status.active_color is None:
            # A first revision has nothing to compare with, nor traffic to move.
            return super().cutover()
        self.interrupt_bake()
        if self.observed.abort == self.revision:
            return self.abort()
        if status.preview_color is not None and status.preview_revision != self.revision:
            return self.restart()
        if self.replicas == 0:
            self.route(0)
            return self.wait_for_replicas()
        if status.preview_started_at is None:
            refused = self.gpu_memory_gate()
            if refused is not None:
                return refused
        if status.preview_color is None:
            status.preview_color = status.active_color.other
            status.previous_color = status.previous_revision = status.scale_down_at = None
        status.preview_revision = self.revision
        self.condition(
            ConditionType.PROGRESSING, True, "NewRevision", f"revision {self.revision} on {status.preview_color}"
        )
        self.condition(ConditionType.DEGRADED, False, "AsExpected", "")
        self.requeue_after = float(self.rollout.checks.interval_seconds)
        if status.preview_started_at is None:
            status.preview_started_at = format_time(self.now)
            self.announce_start(status.preview_color)
        if status.canary is None:
            return self.before_traffic()
        return self.run_step(status.canary)

    # -- before any traffic -----------------------------------------------------------------

    def before_traffic(self) -> Plan:
        """Start the canary's first pods (as many as its first weight needs) and prove them, with
        all traffic still on the stable color."""
        self.route(0)
        first = next((step.set_weight for step in self.spec.steps if step.set_weight), FULL_WEIGHT)
        target = self.split(first)
        state = self.scale(target)
        failed = self.pods_failed(state, self.status.preview_started_at, target.canary)
        if failed is not None:
            return failed
        if state.ready < target.canary or state.revision != self.revision:
            self.enter(Phase.PROGRESSING)
            self.reset_checks()
            return self.done()
        return self.verify()

    def proven(self) -> Plan:
        """The canary's pods serve the model: its first step starts."""
        if self.status.active_color is None:
            return super().proven()
        benchmarking = self.benchmark_gate()
        if benchmarking is not None:
            return benchmarking
        if self.observed.paused:
            return self.held(f"revision {self.revision} proven on {self.preview}, before its first step")
        self.event(EventType.NORMAL, "CanaryStarted", f"revision {self.revision} proven on {self.preview}")
        return self.start_step(0)

    # -- the steps --------------------------------------------------------------------------

    def start_step(self, index: int) -> Plan:
        """Enter step `index`, or promote when the steps are done."""
        status = self.status
        weight = status.canary.weight if status.canary else 0
        steps = self.spec.steps
        if index >= len(steps) or steps[index].set_weight == FULL_WEIGHT:
            status.canary = CanaryStatus(step=index, weight=FULL_WEIGHT, step_started_at=format_time(self.now))
            return self.promote_fully()
        step = steps[index]
        if step.set_weight is not None:
            weight = step.set_weight
        status.canary = CanaryStatus(step=index, weight=weight, step_started_at=format_time(self.now))
        self.reset_checks(next_round_now=True)
        self.event(EventType.NORMAL, "CanaryStep", f"step {index + 1}/{len(steps)}: {describe_step(step)}")
        return self.run_step(status.canary)

    def run_step(self, canary: CanaryStatus) -> Plan:
        """Keep the step's weight in effect, judge its traffic, and move on when the step is done."""
        steps = self.spec.steps
        if canary.weight >= FULL_WEIGHT or canary.step >= len(steps):
            return self.promote_fully()
        step = steps[canary.step]
        target = self.split(canary.weight)
        state = self.scale(target)
        failed = self.pods_failed(state, canary.step_started_at, target.canary)
        if failed is not None:
            return failed
        # Traffic goes to the canary's Ready pods only; it is split once they are proven.
        self.route(canary.weight)
        in_effect = self.in_effect(target) and self.traffic_in_effect(canary.weight)
        canary.traffic_share = self.traffic_share()
        round_failed = self.count_round(self.judge_traffic(canary, in_effect))
        if round_failed is not None:
            return self.fail(*round_failed)
        if not in_effect:
            self.status.check_passes = 0  # a weight is judged once it is in effect
        where = f"step {canary.step + 1}/{len(steps)} ({describe_step(step)})"
        share = f"{canary.traffic_share}% of traffic on revision {self.revision}"
        if in_effect and self.step_done(step, canary):
            if self.observed.paused:
                return self.held(f"revision {self.revision} at {share} after {where}")
            return self.start_step(canary.step + 1)
        if step.pause is not None and step.pause.seconds is None and in_effect:
            self.enter(
                Phase.PAUSED,
                f"revision {self.revision} at {share} in {where}; to continue: kubectl turnout promote "
                f"{self.backend.name} (sets {PROMOTE_ANNOTATION}={self.revision}/{canary.step})",
            )
            self.condition(ConditionType.PROGRESSING, True, "Paused", f"{where}: {share}, waiting for promotion")
            return self.done()
        self.enter(Phase.CANARY)
        self.condition(ConditionType.PROGRESSING, True, "CanaryStep", f"{where}: {share}")
        if step.pause is not None and step.pause.seconds is not None:
            started = parse_time(canary.step_started_at) or self.now
            remaining = step.pause.seconds - (self.now - started).total_seconds()
            self.requeue_after = min(self.requeue_after, max(remaining, 0.5))
        return self.done()

    def step_done(self, step: CanaryStep, canary: CanaryStatus) -> bool:
        """The step's condition to move on holds: its weight judged, its pause over or promoted."""
        if step.set_weight is not None:
            unjudged = self.backend.profile.metrics is None and not self.spec.analysis.metrics
            judged = canary.analysis_passed or unjudged
            return judged and self.status.check_passes >= self.rollout.checks.success_threshold
        assert step.pause is not None
        if step.pause.seconds is None:
            return self.observed.promote in (self.revision, f"{self.revision}/{canary.step}")
        started = parse_time(canary.step_started_at) or self.now
        return (self.now - started).total_seconds() >= step.pause.seconds

    def promote_fully(self) -> Plan:
        """After the last step: the canary grows to `replicas`, then takes all traffic (the switch)."""
        target = self.split(FULL_WEIGHT)
        state = self.scale(target)
        assert self.status.canary is not None
        failed = self.pods_failed(state, self.status.canary.step_started_at, target.canary)
        if failed is not None:
            return failed
        if not self.in_effect(target):
            self.route(self.status.canary.weight)
            self.status.canary.traffic_share = self.traffic_share()
            self.enter(Phase.CANARY)
            self.condition(
                ConditionType.PROGRESSING,
                True,
                "CanaryStep",
                f"revision {self.revision} scaling to {self.replicas} replicas to take all traffic",
            )
            return self.done()
        return self.switch()

    # -- judging a step ---------------------------------------------------------------------

    def judge_traffic(self, canary: CanaryStatus, in_effect: bool) -> Verdict | None:
        """This round's verdict on the step's traffic, from the counters both colors' pods report;
        None when there is nothing to judge yet (no round now, no sample, the window just opened)."""
        if self.backend.profile.metrics is None:
            if self.spec.analysis.metrics:
                return self.judge_metrics_alone(canary, in_effect)
            canary.analysis = AnalysisStatus(
                outcome="NotMeasured",
                message=f"engine {self.backend.engine.value} serves no metrics: each step is judged by "
                "turnout's checks alone",
            )
            return None
        sample = self.observed.traffic
        if sample is None:
            return None
        if not in_effect:
            canary.baseline = None  # the window opens once the step's weight is in effect
            return None
        if sample.canary is None or sample.stable is None:
            canary.analysis = AnalysisStatus(outcome=Outcome.WAIT.value, message=f"no sample: {sample.problem}")
            return None
        now = TrafficBaseline(canary=sample.canary, stable=sample.stable)
        base = canary.baseline
        window = (sample.canary.since(base.canary), sample.stable.since(base.stable)) if base else (None, None)
        if window[0] is None or window[1] is None:
            # The first sample of the step, or a pod restarted or left (its counters went down).
            canary.baseline = now
            canary.analysis = AnalysisStatus(outcome=Outcome.WAIT.value, message="the step's window opens")
            return None
        limits = self.spec.analysis
        verdict = judge(
            window[0],
            window[1],
            max_error_ratio=limits.max_error_ratio,
            max_latency_ratio=limits.max_latency_ratio,
            min_requests=limits.min_requests,
            metrics=limits.metrics,
            readings=sample.metrics,
        )
        canary.analysis = AnalysisStatus(
            outcome=verdict.outcome.value,
            message=bounded(verdict.message),
            canary=color_traffic(verdict.canary),
            stable=color_traffic(verdict.stable) if verdict.stable else None,
            metrics=[MetricValue(name=reading.name, value=reading.value) for reading in sample.metrics],
        )
        canary.analysis_passed = canary.analysis_passed or verdict.outcome is Outcome.PASS
        return verdict

    def judge_metrics_alone(self, canary: CanaryStatus, in_effect: bool) -> Verdict | None:
        """This round's verdict from the team's Prometheus metrics alone, for an engine that serves
        no metrics of its own; None when there is nothing to judge yet."""
        sample = self.observed.traffic
        if sample is None or not in_effect:
            return None
        outcome, message = judge_metrics(self.spec.analysis.metrics, sample.metrics)
        canary.analysis = AnalysisStatus(
            outcome=outcome.value,
            message=bounded(f"{message} (engine {self.backend.engine.value} serves no metrics of its own)"),
            metrics=[MetricValue(name=reading.name, value=reading.value) for reading in sample.metrics],
        )
        canary.analysis_passed = canary.analysis_passed or outcome is Outcome.PASS
        return Verdict(outcome, message, Measurement.of(TrafficCounters()), None, latency_ratio=None)

    def count_round(self, verdict: Verdict | None) -> tuple[FailureReason, str] | None:
        """Fold this round (the checks, and the analysis when it judged) into the counters; the
        reason and message when `failureThreshold` rounds in a row have failed."""
        check = self.observed.check
        if check is None:
            return None
        status = self.status
        status.last_check_time = format_precise_time(self.now)
        analysis_failed = verdict is not None and verdict.outcome is Outcome.FAIL
        if check.passed and not analysis_failed:
            status.check_passes += 1
            status.check_failures = 0
            return None
        status.check_failures += 1
        status.check_passes = 0
        if status.check_failures < self.rollout.checks.failure_threshold:
            return None
        if not check.passed:
            return FailureReason.CHECK_FAILED, check.message
        assert verdict is not None
        return FailureReason.ANALYSIS_FAILED, verdict.message

    # -- a spec change ----------------------------------------------------------------------

    def restart(self) -> Plan:
        """The spec changed mid-canary: all traffic back on stable, and the newest revision starts
        from the first step on the same color."""
        status = self.status
        self.event(
            EventType.NORMAL,
            "Superseded",
            f"revision {status.preview_revision} abandoned for {self.revision}; the canary starts again",
        )
        self.finish(CutoverResult.SUPERSEDED)
        status.preview_revision = self.revision
        status.preview_started_at = None
        status.canary = None
        self.reset_checks()
        self.enter(Phase.PROGRESSING)
        return self.cutover()

    def abandon_preview(self) -> Plan:
        self.route(0)  # traffic leaves the canary before its pods go
        return super().abandon_preview()

    # -- traffic and pods -------------------------------------------------------------------

    @property
    def preview(self) -> Color:
        assert self.status.preview_color is not None
        return self.status.preview_color

    @property
    def stable(self) -> Color:
        assert self.status.active_color is not None
        return self.status.active_color

    def split(self, weight: int) -> Split:
        return pod_split(self.replicas, weight, self.spec.max_surge)

    def scale(self, target: Split) -> ColorState:
        """Move both colors' replicas toward `target`; the canary's state as observed."""
        canary, stable = self.observed.color(self.preview), self.observed.color(self.stable)
        now = scale_toward(target, canary, stable, self.replicas + self.spec.max_surge)
        if not canary.exists or canary.revision != self.revision:
            self.actions.append(ApplyDeployment(self.preview, now.canary))
        elif canary.replicas != now.canary:
            self.actions.append(ScaleDeployment(self.preview, now.canary))
        if stable.replicas != now.stable:
            self.actions.append(ScaleDeployment(self.stable, now.stable))
        return canary

    def in_effect(self, target: Split) -> bool:
        """Both colors run the target's pods, the canary's all Ready."""
        canary, stable = self.observed.color(self.preview), self.observed.color(self.stable)
        return (
            canary.revision == self.revision
            and canary.replicas == target.canary
            and canary.ready >= target.canary
            and stable.replicas == target.stable
        )

    def route(self, weight: int) -> None:
        """Send `weight` percent of the traffic to the canary. Without a route: 0 keeps the Service on
        the stable color, more makes it select both colors' pods. With an HTTPRoute: the Service stays
        on the stable color and the route's two weights say the split."""
        if self.backend.http_route is not None:
            self.select_only(self.stable)
            self.set_route_weights(self.preview, weight)
        elif weight <= 0:
            self.select_only(self.stable)
        elif not self.observed.service_split:
            self.actions.append(SplitService())

    def route_all_to(self, color: Color) -> None:
        super().route_all_to(color)
        if self.backend.http_route is not None:
            self.set_route_weights(color, FULL_WEIGHT)

    def set_route_weights(self, color: Color, weight: int) -> None:
        """The route's weights to `weight` for `color` (the rest for the other), its colors' Services
        in place; nothing while the route is one turnout cannot use (the Routed condition says why)."""
        route = self.observed.route
        if route is None or route.problem:
            return
        if not route.color_services:
            self.actions.append(ApplyColorServices())
        if route.weights != {color: weight, color.other: FULL_WEIGHT - weight}:
            self.actions.append(SetRouteWeights(color, weight))

    def traffic_in_effect(self, weight: int) -> bool:
        """The traffic is split as `weight` asks, as observed (the pods aside)."""
        route = self.observed.route
        if self.backend.http_route is not None:
            wanted = {self.preview: weight, self.stable: FULL_WEIGHT - weight}
            return route is not None and route.weights == wanted
        return self.observed.service_split if weight > 0 else self.observed.service_color == self.stable

    def traffic_share(self) -> int | None:
        """Percent of the traffic the canary takes, as observed: its weight on the route, or its share
        of the Service's Ready endpoints."""
        if self.backend.http_route is not None:
            weights = self.observed.route.weights if self.observed.route else None
            return weights.get(self.preview) if weights else None
        if not self.observed.service_split:
            return 0 if self.observed.service_color == self.stable else None
        canary, stable = self.observed.color(self.preview).ready, self.observed.color(self.stable).ready
        total = canary + stable
        return round(100 * canary / total) if total else None

    def report_route(self) -> None:
        """The Routed condition of a backend with an HTTPRoute: True while turnout can set its weights,
        False (with a Warning Event when it turns so) with what the user must change."""
        route = self.observed.route
        if route is None:
            return
        name = self.backend.http_route
        if route.problem:
            if condition_status(self.status.conditions, ConditionType.ROUTED) != "False":
                self.event(EventType.WARNING, "RouteUnusable", route.problem)
            self.condition(ConditionType.ROUTED, False, "RouteUnusable", route.problem)
        else:
            weights = ", ".join(f"{color} {weight}" for color, weight in sorted((route.weights or {}).items()))
            self.condition(ConditionType.ROUTED, True, "WeightsSet", f"HTTPRoute {name}: {weights}")


def color_traffic(measured: Measurement) -> ColorTraffic:
    return ColorTraffic(
        requests=measured.requests,
        error_ratio=measured.error_ratio,
        p95_latency_seconds=measured.p95_latency_seconds,
        p95_ttft_seconds=measured.p95_ttft_seconds,
    )


def describe_step(step: CanaryStep) -> str:
    """`setWeight 25`, `pause 300 s`, `pause until promoted`."""
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    assert step.pause is not None
    return f"pause {step.pause.seconds} s" if step.pause.seconds is not None else "pause until promoted"
