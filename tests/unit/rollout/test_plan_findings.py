"""Defects of plan() found by the state machine of test_plan_stateful.py, each as the shortest story that shows it.

Each test says what should happen; each failed before plan() was fixed, and the state machine now runs
without excluding any of them.
"""

from __future__ import annotations

from tests.unit.fakes.operator import NAME, NAMESPACE, InProcessOperator
from tests.unit.rollout.world import backend, spec
from turnout.api.labels import REVISION_LABEL
from turnout.api.status import Color
from turnout.kube.observe import ABORT_ANNOTATION
from turnout.rollout.observed import CheckOutcome

BLUE, GREEN = Color.BLUE, Color.GREEN
NEW_MODEL = {"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}
OTHER_MODEL = {"name": "Qwen/Qwen2.5-7B-Instruct", "servedName": "chat"}
WRONG = CheckOutcome(passed=False, message='/v1/models lacks "chat"')


def served_revision(operator: InProcessOperator) -> str | None:
    """The revision of the pod template of the Deployment the Service selects."""
    color = operator.service_color()
    deployment = operator.cluster.deployment(NAMESPACE, f"{NAME}-{color}") if color else None
    return None if deployment is None else deployment["spec"]["template"]["metadata"]["labels"][REVISION_LABEL]


def checked_revisions(operator: InProcessOperator) -> set[str]:
    return {r.revision for r in operator.checks.rounds if r.outcome.passed}


def run_for(operator: InProcessOperator, seconds: int) -> None:
    """Reconciles one check interval apart; the controllers act and every pod becomes Ready before each."""
    for _ in range(seconds // 5):
        operator.pods_ready(BLUE)
        operator.pods_ready(GREEN)
        operator.advance(5)
        operator.reconcile()


def test_a_revision_set_at_zero_replicas_is_checked_before_it_serves(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL, replicas=0))
    operator.reconcile()
    operator.edit(spec(model=NEW_MODEL, replicas=1))
    run_for(operator, 5)
    # Before the fix the Service moved to green at replicas 0, and green's pods now serve a never checked revision.
    assert served_revision(operator) in checked_revisions(operator)


def test_a_new_backend_at_zero_replicas_serves_nothing_unchecked_when_scaled_up(operator: InProcessOperator) -> None:
    operator.create(spec(replicas=0))
    operator.reconcile()
    operator.edit(spec(replicas=1))
    run_for(operator, 5)
    assert served_revision(operator) in checked_revisions(operator) | {None}


def test_a_spec_change_after_an_unrecorded_switch_leaves_the_served_color_alone(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL))
    operator.reconcile()
    operator.pods_ready(GREEN)
    run_for(operator, 15)  # Verifying, two rounds passed
    operator.cluster.lose_status_writes = 1
    run_for(operator, 5)  # the third round passes: the Service moves to green, the status says Verifying
    assert operator.service_color() == "green"
    operator.edit(spec(model=OTHER_MODEL))
    operator.reconcile()
    # Before the fix green, which the Service selects, gets OTHER_MODEL's template: its new pods serve unchecked.
    assert served_revision(operator) == backend(model=NEW_MODEL).revision


def test_a_spec_change_after_an_unrecorded_rollback_leaves_the_served_color_alone(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL))
    operator.reconcile()
    run_for(operator, 25)  # green proven, the Service on green: Baking
    operator.checks.answer = WRONG
    run_for(operator, 10)  # two rounds failed
    operator.cluster.lose_status_writes = 1
    run_for(operator, 5)  # the third fails: the Service back on blue, the status still says Baking on green
    assert operator.service_color() == "blue"
    operator.edit(spec(model=OTHER_MODEL))
    operator.reconcile()
    # Before the fix blue, which the Service selects, gets OTHER_MODEL's template: its new pods serve unchecked.
    assert served_revision(operator) == backend().revision


def test_an_abort_before_the_cutover_started_rolls_nothing_forward(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL))
    operator.cluster.annotate_backend(NAMESPACE, NAME, ABORT_ANNOTATION, backend(model=NEW_MODEL).revision)
    operator.reconcile()  # before the fix: AssertionError in plan.fail(), on every reconcile, until the spec changes
    status = operator.status()
    assert (status.last_failed_revision, status.last_failure_reason) == (backend(model=NEW_MODEL).revision, "Aborted")
    assert operator.service_color() == "blue"


def test_an_abort_whose_status_write_was_lost_is_still_reported_as_aborted(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL))
    operator.reconcile()
    run_for(operator, 25)  # Baking on green
    operator.cluster.annotate_backend(NAMESPACE, NAME, ABORT_ANNOTATION, backend(model=NEW_MODEL).revision)
    operator.cluster.lose_status_writes = 1
    operator.reconcile()  # the Service back on blue, green scaled down, the status still says Baking
    operator.reconcile()
    # Before the fix the second reconcile records "CheckFailed: the Service was found on the old color".
    assert operator.status().last_failure_reason == "Aborted"


def test_reverting_to_the_served_revision_mid_cutover_keeps_serving_it_where_it_is(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(model=NEW_MODEL))
    operator.reconcile()
    operator.edit(spec())
    run_for(operator, 60)
    # Before the fix green gets the served revision's template, is verified, and the Service moves to it; if green
    # then fails, the rollback records the revision blue still serves as lastFailedRevision.
    assert [s["turnout.dev/color"] for s in operator.cluster.service_selectors] == ["blue"]


def test_a_new_service_port_reaches_the_service(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(service={"port": 9000}))
    operator.reconcile()
    service = operator.cluster.service(NAMESPACE, NAME)
    assert service is not None
    assert [port["port"] for port in service["spec"]["ports"]] == [9000]
