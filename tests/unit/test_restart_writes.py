"""A backend at rest costs no write, whatever its phase, and so does a restarted operator's first look at it.

Seen in a full e2e run: the restarted operator wrote once while every backend of its test was Healthy
and unchanged. The write was another test's backend, whose namespace was being deleted: the API
server deletes a namespace's pods before the rest, so that backend lived on with no pod, Degraded,
and each failing round of checks was counted into its status (`checkFailures`, `lastCheckTime`), one
status write per check interval, for as long as nothing changed.
"""

from __future__ import annotations

from tests.unit.fakes.operator import NAMESPACE, InProcessOperator
from tests.unit.rollout.world import spec

PODLESS = "no Ready pods to check"


def delete_pods(operator: InProcessOperator) -> None:
    """The backend's pods are deleted and not made again (the namespace is being deleted: pods go first)."""
    for key in [key for key in operator.cluster.objects if key[0] == "Pod" and key[1] == NAMESPACE]:
        del operator.cluster.objects[key]


def degraded_without_pods(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    delete_pods(operator)
    interval = spec()["rollout"]["checks"]["intervalSeconds"]
    for _ in range(spec()["rollout"]["checks"]["failureThreshold"] + 1):
        operator.advance(interval)
        operator.reconcile()
    status = operator.status()
    assert status.phase == "Degraded", status
    assert PODLESS in next(c.message for c in status.conditions if c.type == "Degraded")


def test_a_degraded_backend_whose_checks_keep_failing_the_same_way_writes_nothing_at_rest(
    operator: InProcessOperator,
) -> None:
    degraded_without_pods(operator)
    mark = len(operator.cluster.writes)
    for _ in range(5):
        operator.advance(operator.reconcile())  # at the pace it asks for: a round each time
    assert len(operator.checks.rounds) >= 5
    assert operator.cluster.writes_since(mark) == []
    assert operator.status().phase == "Degraded"


def test_a_restarted_operator_writes_nothing_for_a_degraded_backend_at_rest(operator: InProcessOperator) -> None:
    degraded_without_pods(operator)
    operator.advance(operator.reconcile())
    mark, rounds = len(operator.cluster.writes), len(operator.checks.rounds)
    operator.restart()
    operator.reconcile()
    assert len(operator.checks.rounds) == rounds + 1  # its first look runs a round, which fails as before
    assert operator.cluster.writes_since(mark) == []


def test_a_degraded_backend_whose_pods_come_back_is_healthy_again(operator: InProcessOperator) -> None:
    degraded_without_pods(operator)
    for _ in range(3):
        operator.advance(operator.reconcile())
    operator.cluster.run_controllers()
    operator.cluster.pods_become_ready(NAMESPACE, "chat-blue")
    for _ in range(3):
        operator.advance(operator.reconcile())
    assert operator.status().phase == "Healthy"
    assert operator.status().check_failures == 0
