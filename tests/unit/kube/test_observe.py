"""What turnout reads off pods, Deployments and the Service: the rules, on plain objects."""

from __future__ import annotations

from typing import Any

from turnout.api.status import Color
from turnout.kube.observe import (
    check_targets,
    color_states,
    gpu_nodes_of,
    ownership_conflict,
    pod_failures,
    service_color,
)
from turnout.rollout.observed import FailureReason, GpuNode


def pod(
    name: str,
    color: str = "green",
    revision: str = "r2",
    ready: bool = True,
    ip: str | None = "10.244.0.7",
    **status: Any,
) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}, *status.pop("conditions", [])]
    return {
        "metadata": {
            "name": name,
            "labels": {"turnout.dev/backend": "chat", "turnout.dev/color": color, "turnout.dev/revision": revision},
        },
        "status": {"podIP": ip, "conditions": conditions, **status},
    }


def deployment(color: str, revision: str, replicas: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"chat-{color}", "labels": {"turnout.dev/color": color}},
        "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"turnout.dev/revision": revision}}}},
    }


def waiting(reason: str, message: str = "") -> list[dict[str, Any]]:
    return [{"name": "engine", "state": {"waiting": {"reason": reason, "message": message}}}]


def test_image_pull_back_off_and_err_image_pull_are_image_failures() -> None:
    for reason in ("ImagePullBackOff", "ErrImagePull"):
        failures = pod_failures(pod("p", ready=False, containerStatuses=waiting(reason, "pull access denied")))
        assert [(f.reason, f.message) for f in failures] == [
            (FailureReason.IMAGE_PULL_BACK_OFF, f"container engine: {reason}: pull access denied")
        ]


def test_crash_loop_and_oom_are_failures() -> None:
    crash = pod_failures(pod("p", ready=False, containerStatuses=waiting("CrashLoopBackOff", "back-off 40s")))
    assert crash[0].reason == FailureReason.CRASH_LOOP_BACK_OFF
    oom = [
        {
            "name": "engine",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
        }
    ]
    assert pod_failures(pod("p", ready=False, containerStatuses=oom))[0].reason == FailureReason.OOM_KILLED


def test_unschedulable_carries_the_schedulers_message_and_since() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastTransitionTime": "2026-11-23T12:00:00Z",
    }
    (failure,) = pod_failures(pod("p", ready=False, ip=None, conditions=[unschedulable]))
    assert failure.reason == FailureReason.UNSCHEDULABLE
    assert failure.message == message
    assert failure.since is not None
    assert failure.since.isoformat() == "2026-11-23T12:00:00+00:00"


def test_a_starting_container_is_not_a_failure() -> None:
    assert pod_failures(pod("p", ready=False, containerStatuses=waiting("ContainerCreating"))) == []


def test_color_state_counts_only_ready_pods_of_the_current_template() -> None:
    pods = [
        pod("new-1", revision="r2"),
        pod("new-2", revision="r2", ready=False),
        pod("old-1", revision="r1"),
        {**pod("gone", revision="r2"), "metadata": {**pod("gone")["metadata"], "deletionTimestamp": "x"}},
    ]
    states = color_states([deployment("green", "r2", 3)], pods)
    green = states[Color.GREEN]
    assert (green.revision, green.replicas, green.ready, green.pods) == ("r2", 3, 1, 4)
    assert Color.BLUE not in states


def test_failures_of_older_pods_are_not_this_revisions() -> None:
    old = pod("old", revision="r1", ready=False, containerStatuses=waiting("CrashLoopBackOff"))
    assert color_states([deployment("green", "r2", 1)], [old])[Color.GREEN].failures == ()


def test_service_color_reads_the_selector() -> None:
    service = {"metadata": {}, "spec": {"selector": {"turnout.dev/backend": "chat", "turnout.dev/color": "blue"}}}
    assert service_color(service) == Color.BLUE
    assert service_color({"metadata": {}, "spec": {"selector": {"turnout.dev/color": "purple"}}}) is None
    assert service_color(None) is None


def test_check_targets_are_ready_pods_of_the_color_and_revision_with_an_ip() -> None:
    pods = [
        pod("a", revision="r2"),
        pod("b", revision="r2", ready=False),
        pod("c", revision="r1"),
        pod("d", color="blue", revision="r2"),
        pod("e", revision="r2", ip=None),
    ]
    targets = check_targets(pods, Color.GREEN, "r2", 8000)
    assert [(t.pod, t.ip, t.port) for t in targets] == [("a", "10.244.0.7", 8000)]


def test_pods_that_cannot_be_created_fail_the_color_with_the_api_servers_message() -> None:
    refused = deployment("green", "r2", 1)
    refused["metadata"]["generation"] = 2
    message = 'pods "chat-green-5d8f-x" is forbidden: exceeded quota: gpus, requested: requests.nvidia.com/gpu=1'
    refused["status"] = {
        "observedGeneration": 2,
        "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": message}],
    }
    failures = color_states([refused], [])[Color.GREEN].failures
    assert [(f.kind, f.pod, f.reason, f.message) for f in failures] == [
        ("Deployment", "chat-green", FailureReason.FAILED_CREATE, f"FailedCreate: {message}")
    ]
    refused["metadata"]["generation"] = 3  # a newer template the controller has not looked at yet
    assert color_states([refused], [])[Color.GREEN].failures == ()


UID = "00000000-0000-4000-8000-0000000000aa"


def owned_object(kind: str, name: str, labels: dict[str, str], controller_uid: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if controller_uid is not None:
        meta["ownerReferences"] = [
            {"kind": "InferenceBackend", "name": "chat", "uid": controller_uid, "controller": True}
        ]
    return {"kind": kind, "metadata": meta}


def test_only_objects_labelled_and_controlled_by_the_backend_are_its_own() -> None:
    mine = owned_object("Service", "chat", {"turnout.dev/backend": "chat"}, UID)
    assert ownership_conflict(mine, "Service", "chat", UID) is None
    assert ownership_conflict(None, "Service", "chat", UID) is None


def test_a_foreign_object_of_the_backends_name_is_a_conflict_naming_its_owner() -> None:
    kubernetes = owned_object("Service", "kubernetes", {"component": "apiserver"}, None)
    assert ownership_conflict(kubernetes, "Service", "chat", UID) == (
        "Service kubernetes exists and belongs to no InferenceBackend: turnout does not take it over; "
        "rename or delete it, or choose another name for this backend's"
    )
    other_backend = owned_object("Service", "shared", {"turnout.dev/backend": "other"}, "another-uid")
    other_backend["metadata"]["ownerReferences"][0]["name"] = "other"
    assert "belongs to InferenceBackend other" in str(ownership_conflict(other_backend, "Service", "chat", UID))
    earlier = owned_object("Deployment", "chat-blue", {"turnout.dev/backend": "chat"}, "an-earlier-uid")
    assert "an earlier object of the same name" in str(ownership_conflict(earlier, "Deployment", "chat", UID))
    unowned = owned_object("Deployment", "chat-blue", {"turnout.dev/backend": "chat"}, None)
    assert "labelled turnout.dev/backend=chat" in str(ownership_conflict(unowned, "Deployment", "chat", UID))


def node(name: str, labels: dict[str, str], gpus: str | None = "1") -> dict[str, Any]:
    capacity = {"cpu": "8", **({"nvidia.com/gpu": gpus} if gpus is not None else {})}
    return {"metadata": {"name": name, "labels": labels}, "status": {"capacity": capacity}}


def test_gpu_nodes_are_those_with_gpus_that_match_the_node_selector() -> None:
    l4 = {"nvidia.com/gpu.memory": "23034", "nvidia.com/gpu.product": "NVIDIA-L4", "pool": "l4"}
    found = gpu_nodes_of(
        [
            node("cpu-1", {"pool": "l4"}, gpus=None),
            node("gpu-0", {"pool": "l4", "nvidia.com/gpu.memory": "23034"}, gpus="0"),
            node("gpu-2", l4),
            node("gpu-1", {**l4, "nvidia.com/gpu.memory": "lots"}),
            node("a100-1", {"nvidia.com/gpu.memory": "81920", "pool": "a100"}),
        ],
        {"pool": "l4"},
    )
    assert found.nodes == (GpuNode("gpu-1", None, "NVIDIA-L4"), GpuNode("gpu-2", 23034, "NVIDIA-L4"))
