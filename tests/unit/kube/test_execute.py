"""The executor does what each action says, through the write each kind of object takes, and nothing else."""

from __future__ import annotations

import asyncio

from tests.unit.fakes.cluster import FakeCluster
from tests.unit.fakes.operator import NAME, NAMESPACE
from tests.unit.rollout.world import backend
from turnout.api.status import Color, InferenceBackendStatus, Phase
from turnout.kube.cluster import BackendRef
from turnout.kube.execute import execute, write_status
from turnout.rollout.actions import (
    Action,
    ApplyClaim,
    ApplyDeployment,
    ApplyService,
    EventType,
    RecordEvent,
    ScaleDeployment,
)

REF = BackendRef(namespace=NAMESPACE, name=NAME, uid="00000000-0000-4000-8000-0000000000aa")
CONTROLLER = {
    "apiVersion": "turnout.dev/v1alpha1",
    "kind": "InferenceBackend",
    "name": NAME,
    "uid": REF.uid,
    "controller": True,
    "blockOwnerDeletion": True,
}
STORED_MODELS = {"name": "m", "servedName": "chat", "storage": {"create": True}}


def carry_out(cluster: FakeCluster, *actions: Action, **spec_changes: object) -> list[RecordEvent]:
    """Execute `actions` for the backend `backend(**spec_changes)`; return the Events emitted."""
    emitted: list[RecordEvent] = []
    asyncio.run(execute(cluster, REF, backend(**spec_changes), actions, emitted.append))
    return emitted


def test_apply_deployment_applies_the_colors_deployment_owned_by_the_backend() -> None:
    cluster = FakeCluster()
    carry_out(cluster, ApplyDeployment(Color.GREEN, 2))
    (write,) = cluster.writes
    assert (write.verb, write.kind, write.name) == ("apply", "Deployment", "chat-green")
    deployment = cluster.deployment(NAMESPACE, "chat-green")
    assert deployment is not None
    assert deployment["metadata"]["ownerReferences"] == [CONTROLLER]
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert (labels["turnout.dev/color"], labels["turnout.dev/revision"]) == ("green", backend().revision)


def test_scale_deployment_sets_replicas_through_the_scale_path_and_keeps_the_template() -> None:
    cluster = FakeCluster()
    carry_out(cluster, ApplyDeployment(Color.BLUE, 1))
    before = cluster.deployment(NAMESPACE, "chat-blue")
    carry_out(cluster, ScaleDeployment(Color.BLUE, 0), vllm={"dtype": "half"})
    assert [(w.verb, w.body) for w in cluster.writes[1:]] == [("scale", {"spec": {"replicas": 0}})]
    after = cluster.deployment(NAMESPACE, "chat-blue")
    assert before is not None
    assert after is not None
    assert after["spec"]["template"] == before["spec"]["template"]
    assert after["spec"]["replicas"] == 0


def test_apply_service_selects_the_color_and_says_when_it_switched() -> None:
    cluster = FakeCluster()
    executed = asyncio.run(execute(cluster, REF, backend(), (ApplyService(Color.GREEN),), lambda _: None))
    assert executed.switched_at is not None
    service = cluster.service(NAMESPACE, "chat")
    assert service is not None
    assert service["spec"]["selector"] == {"turnout.dev/backend": "chat", "turnout.dev/color": "green"}
    assert service["metadata"]["ownerReferences"] == [CONTROLLER]


def test_apply_claim_creates_the_claim_once_and_leaves_it_unowned_by_default() -> None:
    cluster = FakeCluster()
    carry_out(cluster, ApplyClaim(), model=STORED_MODELS)
    claim = cluster.get_claim(NAMESPACE, "chat-models")
    assert claim is not None
    assert "ownerReferences" not in claim["metadata"]
    carry_out(cluster, ApplyClaim(), model={**STORED_MODELS, "storage": {"create": True, "size": "1Ti"}})
    assert cluster.get_claim(NAMESPACE, "chat-models") == claim


def test_apply_claim_is_owned_by_the_backend_only_when_it_should_go_with_it() -> None:
    cluster = FakeCluster()
    carry_out(cluster, ApplyClaim(), model={**STORED_MODELS, "storage": {"create": True, "deleteClaimOnDelete": True}})
    claim = cluster.get_claim(NAMESPACE, "chat-models")
    assert claim is not None
    assert claim["metadata"]["ownerReferences"] == [CONTROLLER]


def test_an_event_goes_to_the_sink_and_writes_nothing() -> None:
    cluster = FakeCluster()
    event = RecordEvent(EventType.WARNING, "RolledBack", "revision r2 rolled back to blue")
    assert carry_out(cluster, event) == [event]
    assert cluster.writes == []


def test_write_status_patches_only_a_changed_status_and_removes_what_is_gone() -> None:
    cluster = FakeCluster()
    cluster.create_backend(NAMESPACE, NAME, {})
    ref = BackendRef(NAMESPACE, NAME, cluster.backend(NAMESPACE, NAME)["metadata"]["uid"])
    verifying = InferenceBackendStatus(phase=Phase.VERIFYING, preview_color=Color.GREEN, check_passes=2)
    assert asyncio.run(write_status(cluster, ref, InferenceBackendStatus(), verifying))
    assert asyncio.run(write_status(cluster, ref, verifying, verifying.model_copy())) is False
    assert len(cluster.writes) == 1
    healthy = InferenceBackendStatus(phase=Phase.HEALTHY, active_color=Color.GREEN)
    asyncio.run(write_status(cluster, ref, verifying, healthy))
    stored = cluster.backend(NAMESPACE, NAME)["status"]
    assert "previewColor" not in stored
    assert (stored["phase"], stored["activeColor"]) == ("Healthy", "green")
