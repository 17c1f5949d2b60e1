"""A write the API server refuses for good reaches the user's conditions, once, through the real
reconcile: the executor stops at the refusal and the plan is made again with it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes.client.exceptions import ApiException

from tests.unit.fakes.cluster import FakeCluster
from tests.unit.fakes.operator import InProcessOperator
from tests.unit.rollout.world import spec
from turnout.api.status import Color
from turnout.kube.cluster import KubeObject

REFUSAL = 'Deployment.apps "chat-green" is invalid: spec.template.spec.containers[0].env[0].name: Invalid value: "A=B"'


class RefusingCluster(FakeCluster):
    """The fake cluster, with an API server that refuses Deployments carrying an env var named `A=B`."""

    def apply(self, obj: KubeObject) -> None:
        containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
        if any(env.get("name") == "A=B" for c in containers for env in c.get("env", [])):
            error = ApiException(status=422, reason="Unprocessable Entity")
            error.body = json.dumps({"kind": "Status", "message": REFUSAL, "code": 422})
            raise error
        super().apply(obj)


@pytest.fixture
def operator() -> Iterator[InProcessOperator]:
    with InProcessOperator(RefusingCluster()) as running:
        yield running


def test_a_refused_preview_is_rolled_back_with_the_api_servers_message_and_not_retried(
    operator: InProcessOperator,
) -> None:
    operator.start_healthy(spec())
    operator.edit(spec(template={"env": [{"name": "A=B", "value": "1"}]}))
    operator.reconcile()
    status = operator.status()
    assert status.last_failure_reason == "ApplyFailed"
    assert REFUSAL in (status.last_failure_message or "")
    assert status.active_color == Color.BLUE
    assert operator.service_color() == "blue"
    assert [e.reason for e in operator.last_events] == ["RolledBack"]
    for _ in range(3):
        operator.advance(60)
        operator.reconcile()
        assert [w.kind for w in operator.last_writes if w.kind != "InferenceBackend"] == []
        assert operator.last_events == []
    assert operator.status().active_color == Color.BLUE
    assert operator.status().phase == "Degraded"


def test_a_refused_first_revision_is_degraded_once_and_a_new_spec_starts_again(operator: InProcessOperator) -> None:
    operator.create(spec(template={"env": [{"name": "A=B", "value": "1"}]}))
    operator.reconcile()
    status = operator.status()
    assert status.phase == "Degraded"
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert (degraded.reason, REFUSAL in degraded.message) == ("ApplyFailed", True)
    assert [e.reason for e in operator.last_events] == ["ApplyFailed"]
    operator.advance(60)
    operator.reconcile()
    assert operator.last_writes == []
    operator.edit(spec())
    operator.reconcile()
    assert next((w.verb, w.kind) for w in operator.last_writes) == ("apply", "Deployment")


def test_a_transient_error_is_not_taken_for_a_refusal() -> None:
    class Overloaded(FakeCluster):
        def apply(self, obj: KubeObject) -> None:
            raise ApiException(status=503, reason="Service Unavailable")

    with InProcessOperator(Overloaded()) as operator:
        operator.create(spec())
        with pytest.raises(ApiException):
            operator.reconcile()  # the handler retries with backoff; nothing is recorded as failed
        assert operator.status().last_failed_revision is None
