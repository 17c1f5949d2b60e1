"""A backend acts only on what it created: an object of one of its names that is someone else's is
reported as a Conflict, and nothing of the backend is written until it is gone."""

from __future__ import annotations

from tests.unit.fakes.operator import NAMESPACE, InProcessOperator
from tests.unit.rollout.world import spec
from turnout.api.status import Color

FOREIGN_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "chat", "namespace": NAMESPACE, "labels": {"app": "legacy-chat"}},
    "spec": {"selector": {"app": "legacy-chat"}, "ports": [{"port": 80}]},
}


def conflict(operator: InProcessOperator) -> tuple[str, str, str]:
    found = next(c for c in operator.status().conditions if c.type == "Conflict")
    return found.status, found.reason, found.message


def test_a_service_of_the_same_name_that_is_someone_elses_is_never_taken_over(operator: InProcessOperator) -> None:
    operator.cluster.objects[("Service", NAMESPACE, "chat")] = dict(FOREIGN_SERVICE)
    operator.create(spec())
    operator.reconcile()
    assert [w.kind for w in operator.last_writes] == ["InferenceBackend"]  # its status, nothing else
    assert operator.status().phase == "Degraded"
    status, reason, message = conflict(operator)
    assert (status, reason) == ("True", "Conflict")
    assert message.startswith("Service chat exists and belongs to no InferenceBackend")
    assert [e.reason for e in operator.last_events] == ["Conflict"]
    operator.advance(60)
    operator.reconcile()
    assert operator.last_writes == []
    assert operator.last_events == []  # said once
    assert operator.cluster.objects[("Service", NAMESPACE, "chat")] == FOREIGN_SERVICE


def test_a_foreign_deployment_named_like_a_color_blocks_the_backend_until_it_is_gone(
    operator: InProcessOperator,
) -> None:
    foreign = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "chat-blue", "namespace": NAMESPACE, "labels": {"app": "blue-team"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "blue-team"}}}},
    }
    operator.cluster.objects[("Deployment", NAMESPACE, "chat-blue")] = dict(foreign)
    operator.create(spec())
    operator.reconcile()
    assert "Deployment chat-blue exists" in conflict(operator)[2]
    assert operator.cluster.objects[("Deployment", NAMESPACE, "chat-blue")] == foreign
    del operator.cluster.objects[("Deployment", NAMESPACE, "chat-blue")]
    operator.reconcile()
    assert conflict(operator)[:2] == ("False", "Resolved")
    assert ("apply", "Deployment", "chat-blue") in [(w.verb, w.kind, w.name) for w in operator.last_writes]
    operator.pods_ready(Color.BLUE)
    operator.reconcile()
    assert operator.status().phase == "Verifying"
