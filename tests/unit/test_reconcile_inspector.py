"""The inspector pod through the real reconcile: created owned by the backend and labelled as no engine
pod, deleted once its files are read or given up; refused by the API server (an older chart's RBAC
without pods create), it leaves the estimate unsure and the revision goes on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes.client.exceptions import ApiException

from tests.unit.fakes.cluster import FakeCluster
from tests.unit.fakes.operator import InProcessOperator
from tests.unit.rollout.world import spec
from turnout.kube.cluster import KubeObject
from turnout.rollout.model_config import INSPECTION_SECONDS

ON_CLAIM = spec(model={"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "chat", "storage": {"claimName": "m"}})
FORBIDDEN = 'pods is forbidden: User "system:serviceaccount:turnout:turnout" cannot create resource "pods"'


class NoPodsCluster(FakeCluster):
    """The fake cluster, with an API server that refuses turnout any pod."""

    def create_pod(self, obj: KubeObject) -> None:
        error = ApiException(status=403, reason="Forbidden")
        error.body = json.dumps({"kind": "Status", "message": FORBIDDEN, "code": 403})
        raise error


@pytest.fixture
def operator() -> Iterator[InProcessOperator]:
    with InProcessOperator() as running:
        yield running


def inspectors(operator: InProcessOperator) -> list[KubeObject]:
    return operator.cluster.list_pods("ml", "turnout.dev/inspects=model-config")


def test_the_inspector_is_the_backends_own_and_is_deleted_when_given_up(operator: InProcessOperator) -> None:
    operator.create(ON_CLAIM)
    operator.reconcile()
    (pod,) = inspectors(operator)
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "InferenceBackend"
    assert "turnout.dev/color" not in pod["metadata"]["labels"]
    assert [w.kind for w in operator.last_writes if w.kind != "InferenceBackend"] == ["Pod"]
    operator.advance(INSPECTION_SECONDS + 1)  # never Ready
    operator.reconcile()
    assert inspectors(operator) == []
    assert ("delete", "Pod") in [(w.verb, w.kind) for w in operator.last_writes]
    assert "Deployment" in [w.kind for w in operator.last_writes]
    status = operator.status()
    assert status.model_files is not None
    assert "did not serve the model's files within 120 s" in status.model_files.message


def test_an_inspector_refused_leaves_the_estimate_unsure_and_the_revision_starts() -> None:
    with InProcessOperator(NoPodsCluster()) as operator:
        operator.create(ON_CLAIM)
        operator.reconcile()
        status = operator.status()
        assert status.last_failure_reason is None
        assert status.model_files is not None
        assert status.model_files.message == f"the API server refused the inspector pod for claim m: {FORBIDDEN}"
        assert status.gpu_memory is not None
        assert status.gpu_memory.message.startswith("not estimated: the API server refused the inspector pod")
        assert "Deployment" in [w.kind for w in operator.last_writes]
