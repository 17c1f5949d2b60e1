"""`plan(desired, observed) -> Plan`, pure: the one entry to every rollout decision.

The caller reads the cluster into `Observed`, calls `plan`, carries out `Plan.actions` in order,
and writes `Plan.status`. Nothing is kept in memory between two calls: all a step needs is in the
status, the objects' labels and the Service's selector, so a restarted operator resumes wherever
it stopped, and a Service that was already moved is never moved again.

`plan` dispatches on `rollout.strategy` to one module per strategy (`bluegreen.py` for BlueGreen
and Recreate, `canary.py` for Canary); what strategies share lives in `step.py`. An invalid spec is handled here, before
any strategy, because it changes nothing in the cluster.
"""

from __future__ import annotations

from datetime import datetime
from typing import assert_never

from turnout.api.backend import Backend, InvalidSpec
from turnout.api.spec import Strategy
from turnout.api.status import Color, ConditionType, InferenceBackendStatus, Phase
from turnout.rollout.actions import Action, DeleteInspector, EventType, RecordEvent
from turnout.rollout.bluegreen import BlueGreen, Recreate
from turnout.rollout.canary import Canary
from turnout.rollout.conditions import bounded, condition_status, parse_time, set_condition
from turnout.rollout.observed import Observed
from turnout.rollout.step import IDLE_RESYNC_SECONDS, Plan, Step

__all__ = ["IDLE_RESYNC_SECONDS", "Plan", "check_due", "check_target", "plan"]


def plan(desired: Backend | InvalidSpec, observed: Observed) -> Plan:
    """Decide the next step of one backend with the strategy its spec names."""
    if isinstance(desired, InvalidSpec):
        return _plan_invalid(desired, observed)
    if observed.conflicts:
        return _plan_conflict(observed)
    return strategy_step(desired, observed).decide()


def strategy_step(backend: Backend, observed: Observed) -> Step:
    """The step of the backend's `rollout.strategy`."""
    strategy = backend.spec.rollout.strategy
    match strategy:
        case Strategy.BLUE_GREEN:
            return BlueGreen(backend, observed)
        case Strategy.RECREATE:
            return Recreate(backend, observed)
        case Strategy.CANARY:
            return Canary(backend, observed)
        case _:
            assert_never(strategy)


def check_due(
    status: InferenceBackendStatus, interval_seconds: float, now: datetime, revision: str | None = None
) -> Color | None:
    """The color to check in this reconcile, if a round is due: at most one per interval.

    Reconciles also run on every change of the backend, its pods or Deployments; without this,
    rounds would follow those events and "N passes in a row" could take milliseconds. `revision`
    is the spec's: see `check_target`.
    """
    target = check_target(status, revision)
    last = parse_time(status.last_check_time)
    if target is None or (last is not None and (now - last).total_seconds() < interval_seconds):
        return None
    return target


def check_target(status: InferenceBackendStatus, revision: str | None = None) -> Color | None:
    """The color whose pods the next reconcile must check, from the phase the status records.

    With the spec's `revision`, only a color that runs it: the checks speak the spec's engine and
    served name, so they say nothing about a color that runs another revision (e.g. the serving
    color while the spec names a revision that failed).
    """
    if status.phase in (Phase.VERIFYING, Phase.PAUSED, Phase.CANARY):
        color, running = status.preview_color, status.preview_revision
    elif status.phase is Phase.BAKING:
        color, running = status.active_color, status.active_revision
    elif status.phase in (Phase.HEALTHY, Phase.DEGRADED) and status.preview_color is None and not status.switched_at:
        color, running = status.active_color, status.active_revision  # the serving revision stays watched
    else:
        return None
    if revision is not None and running != revision:
        return None
    return color


def _plan_conflict(observed: Observed) -> Plan:
    """Objects of this backend's names belong to someone else: nothing is written, it is said once."""
    plan = _report_and_wait(
        observed, ConditionType.CONFLICT, "; ".join(observed.conflicts), also=(ConditionType.DEGRADED,)
    )
    plan.status.phase = Phase.DEGRADED
    return plan


def _plan_invalid(error: InvalidSpec, observed: Observed) -> Plan:
    """An invalid spec changes nothing in the cluster; it is reported, once, and waited out. With
    nothing serving nor in flight, the phase says so; otherwise the phase stays (the condition
    tells), and with it what the next valid spec resumes from, such as a switch whose status was lost."""
    plan = _report_and_wait(observed, ConditionType.INVALID_SPEC, str(error))
    if plan.status.active_color is None and plan.status.preview_color is None:
        plan.status.phase = Phase.INVALID_SPEC
    return plan


def _report_and_wait(
    observed: Observed, type_: ConditionType, message: str, also: tuple[ConditionType, ...] = ()
) -> Plan:
    """No write but the status: condition `type_` (and `also`) True with reason `type_`, a Warning
    Event the first time, and a look again at the idle pace."""
    status = observed.status.model_copy(deep=True)
    status.observed_generation = observed.generation
    actions: list[Action] = []
    if condition_status(status.conditions, type_) != "True":
        actions.append(RecordEvent(EventType.WARNING, type_.value, bounded(message)))
    for each in (type_, *also):
        status.conditions = set_condition(
            status.conditions, each, True, type_.value, message, generation=observed.generation, now=observed.now
        )
    # An inspector pod asked for before the spec went wrong reads nothing now.
    actions += [DeleteInspector(pod.name) for pod in observed.inspectors if not pod.deleting]
    return Plan(actions=tuple(actions), status=status, requeue_after=IDLE_RESYNC_SECONDS)
