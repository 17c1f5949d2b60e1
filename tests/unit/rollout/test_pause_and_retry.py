"""`turnout.dev/pause` holds a cutover before traffic moves; `turnout.dev/retry` tries a failed
revision again, once per value. Stories through the real reconcile on the fake cluster."""

from __future__ import annotations

from typing import Any

from tests.unit.fakes.operator import NAME, NAMESPACE, InProcessOperator, benchmark_result
from tests.unit.rollout.world import backend, spec
from turnout.api.status import Color
from turnout.rollout.observed import CheckOutcome

BLUE, GREEN = Color.BLUE, Color.GREEN
NEW_MODEL = {"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}
PAUSE, RETRY = "turnout.dev/pause", "turnout.dev/retry"


def settle(operator: InProcessOperator, *, until: str, rounds: int = 60) -> None:
    """Reconcile every 5 s while every pod becomes Ready, until the phase is `until`."""
    for _ in range(rounds):
        for color in Color:
            operator.pods_ready(color)
        operator.advance(5)
        operator.reconcile()
        if operator.status().phase == until:
            return
    raise AssertionError(f"never reached {until}: {operator.status()}")


def turn(operator: InProcessOperator, rounds: int) -> None:
    for _ in range(rounds):
        for color in Color:
            operator.pods_ready(color)
        operator.advance(5)
        operator.reconcile()


def unannotate(operator: InProcessOperator, key: str) -> None:
    operator.cluster.unannotate_backend(NAMESPACE, NAME, key)


def reasons(operator: InProcessOperator, since: int = 0) -> list[str]:
    return [event.reason for event in operator.events[since:]]


def test_a_pause_holds_a_blue_green_cutover_at_its_switch_until_resumed(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.cluster.annotate_backend(NAMESPACE, NAME, PAUSE, "true")
    new = spec(model=NEW_MODEL)
    operator.edit(new)
    settle(operator, until="Paused")
    turn(operator, 10)
    status = operator.status()
    assert (status.phase, status.preview_color, status.active_color) == ("Paused", GREEN, BLUE)
    assert operator.service_color() == "blue"  # proven, and still not switched
    paused = next(event for event in operator.events if event.reason == "Paused")
    assert "held by the turnout.dev/pause annotation: kubectl turnout resume chat" in paused.message
    unannotate(operator, PAUSE)
    settle(operator, until="Healthy")
    assert (operator.status().active_color, operator.service_color()) == (GREEN, "green")


def test_a_failure_while_paused_still_rolls_back(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.cluster.annotate_backend(NAMESPACE, NAME, PAUSE, "true")
    operator.edit(spec(model=NEW_MODEL))
    settle(operator, until="Paused")
    operator.checks.answer = CheckOutcome(passed=False, message='/v1/models lacks "chat"')
    settle(operator, until="Degraded")
    status = operator.status()
    assert (status.last_failed_revision, status.active_color) == (backend(model=NEW_MODEL).revision, BLUE)
    assert operator.service_color() == "blue"


def test_a_pause_holds_recreate_before_it_scales_the_serving_color_down(operator: InProcessOperator) -> None:
    recreate: dict[str, Any] = {**spec()["rollout"], "strategy": "Recreate"}
    operator.start_healthy(spec(rollout=recreate))
    operator.cluster.annotate_backend(NAMESPACE, NAME, PAUSE, "true")
    operator.edit(spec(rollout=recreate, model=NEW_MODEL))
    settle(operator, until="Paused")
    turn(operator, 5)
    blue = operator.cluster.deployment(NAMESPACE, f"{NAME}-blue")
    assert blue is not None
    assert blue["spec"]["replicas"] == 1  # no outage while held
    assert operator.cluster.deployment(NAMESPACE, f"{NAME}-green") is None
    unannotate(operator, PAUSE)
    settle(operator, until="Healthy")
    assert operator.status().active_color == GREEN


def test_a_pause_holds_a_canary_between_its_steps(operator: InProcessOperator) -> None:
    canary = {**spec()["rollout"], "strategy": "Canary", "canary": {"steps": [{"setWeight": 25}, {"setWeight": 50}]}}
    operator.start_healthy(spec(rollout=canary, replicas=4))
    operator.edit(spec(rollout=canary, replicas=4, model=NEW_MODEL))
    settle(operator, until="Canary")
    operator.cluster.annotate_backend(NAMESPACE, NAME, PAUSE, "true")
    settle(operator, until="Paused")
    turn(operator, 10)
    status = operator.status()
    assert status.canary is not None
    assert (status.phase, status.canary.step, status.canary.weight) == ("Paused", 0, 25)
    unannotate(operator, PAUSE)
    settle(operator, until="Healthy")
    assert operator.status().active_color == GREEN


def failed_cutover(operator: InProcessOperator) -> str:
    """A healthy backend whose next revision failed its checks and was rolled back; its revision."""
    operator.start_healthy(spec())
    operator.checks.answer = CheckOutcome(passed=False, message='/v1/models lacks "chat"')
    operator.edit(spec(model=NEW_MODEL))
    settle(operator, until="Degraded")
    revision = backend(model=NEW_MODEL).revision
    assert operator.status().last_failed_revision == revision
    return revision


def test_retry_runs_a_failed_revision_again_without_a_spec_change(operator: InProcessOperator) -> None:
    revision = failed_cutover(operator)
    turn(operator, 5)
    assert operator.status().active_color == BLUE  # not retried by itself
    operator.checks.answer = CheckOutcome(passed=True)
    since = len(operator.events)
    operator.cluster.annotate_backend(NAMESPACE, NAME, RETRY, f"{revision}@2026-11-28T15:00:00Z")
    settle(operator, until="Healthy")
    status = operator.status()
    assert (status.active_color, status.active_revision) == (GREEN, revision)
    assert reasons(operator, since)[:2] == ["Retrying", "Progressing"]


def test_one_retry_value_retries_once(operator: InProcessOperator) -> None:
    revision = failed_cutover(operator)
    operator.cluster.annotate_backend(NAMESPACE, NAME, RETRY, f"{revision}@2026-11-28T15:00:00Z")
    settle(operator, until="Verifying")
    settle(operator, until="Degraded")  # the checks still fail: rolled back again
    since = len(operator.events)
    turn(operator, 10)
    assert "Retrying" not in reasons(operator, since)
    assert operator.status().phase == "Degraded"
    operator.cluster.annotate_backend(NAMESPACE, NAME, RETRY, f"{revision}@2026-11-28T15:05:00Z")
    turn(operator, 1)
    assert reasons(operator, since)[-2:] == ["Retrying", "Progressing"]


def test_a_retry_of_a_revision_that_did_not_fail_is_said_to_be_ignored(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    since = len(operator.events)
    operator.cluster.annotate_backend(NAMESPACE, NAME, RETRY, "0123456789@2026-11-28T15:00:00Z")
    turn(operator, 3)
    ignored = [event for event in operator.events[since:] if event.reason == "RetryIgnored"]
    assert len(ignored) == 1
    assert f"the spec's revision is {backend().revision}" in ignored[0].message
    assert operator.status().phase == "Healthy"


def test_a_retry_while_the_abort_annotation_names_the_revision_is_refused(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL))
    revision = backend(model=NEW_MODEL).revision
    operator.cluster.annotate_backend(NAMESPACE, NAME, "turnout.dev/abort", revision)
    settle(operator, until="Degraded")
    operator.cluster.annotate_backend(NAMESPACE, NAME, RETRY, f"{revision}@2026-11-28T15:00:00Z")
    turn(operator, 2)
    ignored = [event.message for event in operator.events if event.reason == "RetryIgnored"]
    assert ignored == [
        f"{RETRY}={revision}@2026-11-28T15:00:00Z ignored: the turnout.dev/abort annotation still names it; "
        "remove it first"
    ]
    assert operator.status().active_color == BLUE


def test_retry_runs_a_failed_benchmark_again(operator: InProcessOperator) -> None:
    gated = {**spec()["rollout"], "benchmark": {"minThroughputRatio": 2.0}}
    operator.start_healthy(spec(rollout=gated))
    operator.benchmarks.results = {GREEN: benchmark_result(30.0), BLUE: benchmark_result(20.0)}
    operator.edit(spec(rollout=gated, model=NEW_MODEL))
    settle(operator, until="Degraded")
    revision = backend(model=NEW_MODEL).revision
    assert operator.status().last_failure_reason == "BenchmarkFailed"
    operator.benchmarks.results = {GREEN: benchmark_result(90.0), BLUE: benchmark_result(20.0)}
    operator.cluster.annotate_backend(NAMESPACE, NAME, RETRY, f"{revision}@2026-11-28T15:00:00Z")
    settle(operator, until="Healthy")
    assert operator.status().active_revision == revision
