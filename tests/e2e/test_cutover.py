"""The operator's story on a real control plane: create, cut over, roll back, resume, clean up.

Engines are the test ground's simulators, answering on the pods' IPs; a pod's behaviour comes from
`template.podAnnotations` (sim.turnout.dev/behaviour, sim.turnout.dev/fault).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.harness import (
    FAST_ROLLOUT,
    Backends,
    EndpointClient,
    OperatorProcess,
    ServiceMoves,
    ollama_spec,
    vllm_spec,
    wait_seconds,
)
from turnout.api.backend import Backend

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

BEHAVIOUR = "sim.turnout.dev/behaviour"
FAULT = "sim.turnout.dev/fault"


def with_pod_annotations(spec: dict[str, Any], **annotations: str) -> dict[str, Any]:
    return {**spec, "template": {"podAnnotations": annotations}}


def healthy(backends: Backends, name: str, spec: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    backends.create(name, spec)
    return backends.wait_phase(name, "Healthy", timeout=timeout)


def active_color(backends: Backends, service: str) -> str:
    return backends.service_selector(service)["turnout.dev/color"]


# -- 1. create ----------------------------------------------------------------------------------


def test_create_becomes_healthy_with_the_service_on_the_active_color(
    operator: OperatorProcess, backends: Backends
) -> None:
    status = healthy(backends, "chat", ollama_spec())
    assert status["activeColor"] == "blue"
    assert active_color(backends, "chat") == "blue"
    assert status["readyReplicas"] == 1
    assert status["observedGeneration"] == 1
    ready = backends.condition("chat", "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Serving")
    assert backends.condition("chat", "Progressing")["status"] == "False"
    assert backends.condition("chat", "InvalidSpec")["status"] == "False"
    reasons = [reason for _, reason, _ in backends.events("chat")]
    assert "Switched" in reasons


# -- 2. model change, zero failed requests ------------------------------------------------------


def test_model_change_switches_once_with_no_failed_request(operator: OperatorProcess, backends: Backends) -> None:
    healthy(backends, "chat", vllm_spec())
    blue = backends.pod_ips("chat", "blue")
    assert blue, "blue's pods have no IP"
    with EndpointClient(backends, "chat") as clients:
        backends.replace_spec("chat", vllm_spec(model="meta-llama/Llama-3.2-3B-Instruct"))
        backends.wait_status("chat", timeout=90, activeColor="green", phase="Healthy")
        wait_seconds(lambda: backends.deployment_replicas("chat-blue") == 0, timeout=30, what="blue scaled down")
        # Keep sending until blue's pods are gone from the endpoints, and then some more.
        wait_seconds(
            lambda: not blue & backends.endpoint_addresses("chat"), timeout=30, what="blue's pods out of the endpoints"
        )
        sent_before = clients.sent
        wait_seconds(lambda: clients.sent >= sent_before + 10, timeout=30, what="10 requests after blue left")
    assert clients.failures == [], clients.failures[:5]
    assert clients.sent > 20
    assert clients.models == {"chat"}
    switches = [r for _, r, _ in backends.events("chat") if r == "Switched"]
    assert len(switches) == 2  # the first revision, then green: once each


# -- 3. engine switch and back ------------------------------------------------------------------


def test_engine_switch_to_vllm_and_back_keeps_the_served_name(operator: OperatorProcess, backends: Backends) -> None:
    healthy(backends, "chat", ollama_spec())
    with EndpointClient(backends, "chat") as clients:
        backends.replace_spec("chat", vllm_spec())
        backends.wait_status("chat", timeout=90, activeColor="green", phase="Healthy")
        backends.replace_spec("chat", ollama_spec())
        backends.wait_status("chat", timeout=90, activeColor="blue", phase="Healthy")
    assert clients.failures == [], clients.failures[:5]
    assert clients.models == {"chat"}


# -- 4-7. failures before and after the switch -------------------------------------------------


def test_green_never_ready_is_rolled_back_at_the_ready_timeout(operator: OperatorProcess, backends: Backends) -> None:
    healthy(backends, "chat", vllm_spec())
    started = time.monotonic()
    backends.replace_spec("chat", with_pod_annotations(vllm_spec(), **{FAULT: "NeverReady"}))
    status = backends.wait_failure("chat", timeout=90)
    elapsed = time.monotonic() - started
    assert status["lastFailureReason"] == "ReadyTimeout"
    # Status times have one-second precision, so the timeout may fire up to a second early.
    assert elapsed >= FAST_ROLLOUT["readyTimeoutSeconds"] - 1
    assert status["activeColor"] == "blue"
    assert active_color(backends, "chat") == "blue"
    assert backends.condition("chat", "RolledBack")["reason"] == "ReadyTimeout"
    assert backends.deployment_replicas("chat-green") == 0


def test_green_lacking_the_model_is_rolled_back_before_the_switch(
    operator: OperatorProcess, backends: Backends
) -> None:
    healthy(backends, "chat", vllm_spec())
    backends.replace_spec("chat", with_pod_annotations(vllm_spec(), **{BEHAVIOUR: "never-serves-model"}))
    status = backends.wait_failure("chat", timeout=60)
    assert status["lastFailureReason"] == "CheckFailed"
    assert '/v1/models lacks "chat"' in status["lastFailureMessage"]
    assert active_color(backends, "chat") == "blue"
    rolled_back = backends.condition("chat", "RolledBack")
    assert rolled_back["status"] == "True"
    assert '/v1/models lacks "chat"' in rolled_back["message"]
    assert any(r == "RolledBack" and t == "Warning" for t, r, _ in backends.events("chat"))
    assert operator.metric("turnout_rollbacks_total", reason="CheckFailed") >= 1


def test_green_failing_during_the_bake_goes_back_to_blue(operator: OperatorProcess, backends: Backends) -> None:
    healthy(backends, "chat", vllm_spec())
    spec = vllm_spec(rollout={**FAST_ROLLOUT, "bakeSeconds": 60})
    spec = with_pod_annotations(spec, **{BEHAVIOUR: "fail-after:4"})
    backends.replace_spec("chat", spec)
    backends.wait_phase("chat", "Baking", timeout=60)
    assert active_color(backends, "chat") == "green"
    seconds = wait_seconds(lambda: active_color(backends, "chat") == "blue", timeout=30, what="Service back on blue")
    status = backends.wait_failure("chat", timeout=10)
    assert status["lastFailureReason"] == "CheckFailed"
    assert status["activeColor"] == "blue"
    checks = FAST_ROLLOUT["checks"]
    assert seconds <= 4 + checks["failureThreshold"] * checks["intervalSeconds"] + 5


@pytest.mark.parametrize(
    ("change", "reason", "says"),
    [
        ({"template": {"podAnnotations": {FAULT: "ImagePullBackOff"}}}, "ImagePullBackOff", "ImagePullBackOff"),
        ({"template": {"podAnnotations": {FAULT: "CrashLoopBackOff"}}}, "CrashLoopBackOff", "CrashLoopBackOff"),
        ({"resources": {"gpus": 16}, "vllm": {"tensorParallelSize": 16}}, "Unschedulable", "nvidia.com/gpu"),
    ],
    ids=["image-pull", "crash-loop", "insufficient-gpus"],
)
def test_pod_failures_fail_fast_with_their_reason(
    operator: OperatorProcess, backends: Backends, change: dict[str, Any], reason: str, says: str
) -> None:
    rollout = {**FAST_ROLLOUT, "readyTimeoutSeconds": 600}
    healthy(backends, "chat", vllm_spec(rollout=rollout))
    started = time.monotonic()
    backends.replace_spec("chat", {**vllm_spec(rollout=rollout), **change})
    status = backends.wait_failure("chat", timeout=60)
    assert time.monotonic() - started < 60  # the ready timeout is 600 s
    assert status["lastFailureReason"] == reason
    assert says in status["lastFailureMessage"]
    assert any(r == "RolledBack" and says in m for _, r, m in backends.events("chat"))
    assert active_color(backends, "chat") == "blue"


# -- 8-10. not retried, paused, superseded ------------------------------------------------------


def test_a_failed_revision_is_not_retried_until_the_spec_changes(operator: OperatorProcess, backends: Backends) -> None:
    healthy(backends, "chat", vllm_spec())
    bad = with_pod_annotations(vllm_spec(), **{FAULT: "ImagePullBackOff"})
    backends.replace_spec("chat", bad)
    backends.wait_failure("chat", timeout=60)
    generation = backends.get("chat")["metadata"]["generation"]
    backends.wait("chat", lambda s: s.get("observedGeneration") == generation, timeout=10, what="observed")
    # Nothing starts again on its own: green stays at zero across several check intervals.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert backends.deployment_replicas("chat-green") == 0
        assert backends.status("chat")["phase"] == "Degraded"
        time.sleep(0.5)
    backends.replace_spec("chat", vllm_spec(model="meta-llama/Llama-3.2-3B-Instruct"))
    backends.wait_status("chat", timeout=60, activeColor="green", phase="Healthy")
    assert backends.condition("chat", "RolledBack")["status"] == "False"


def test_auto_promote_off_waits_in_paused_until_promoted(operator: OperatorProcess, backends: Backends) -> None:
    rollout = {**FAST_ROLLOUT, "autoPromote": False}
    healthy(backends, "chat", vllm_spec(rollout=rollout))
    backends.replace_spec("chat", vllm_spec(model="meta-llama/Llama-3.2-3B-Instruct", rollout=rollout))
    status = backends.wait_phase("chat", "Paused", timeout=60)
    revision = status["previewRevision"]
    time.sleep(3)  # Paused must hold: look again after a few check intervals
    assert backends.status("chat")["phase"] == "Paused"
    assert active_color(backends, "chat") == "blue"
    backends.annotate("chat", {"turnout.dev/promote": revision})
    backends.wait_status("chat", timeout=30, activeColor="green")
    assert active_color(backends, "chat") == "green"


def test_spec_edited_mid_cutover_abandons_the_stale_preview(operator: OperatorProcess, backends: Backends) -> None:
    healthy(backends, "chat", vllm_spec())
    slow = with_pod_annotations(vllm_spec(model="meta-llama/Llama-3.2-3B-Instruct"), **{BEHAVIOUR: "slow-start:600"})
    backends.replace_spec("chat", slow)
    backends.wait("chat", lambda s: s.get("previewRevision"), timeout=30, what="a preview")
    stale = backends.status("chat")["previewRevision"]
    newest = vllm_spec(model="mistralai/Mistral-7B-Instruct-v0.3")
    backends.replace_spec("chat", newest)
    status = backends.wait_status("chat", timeout=90, activeColor="green", phase="Healthy")
    assert status["activeRevision"] != stale
    assert any(r == "Superseded" for _, r, _ in backends.events("chat"))


# -- 11. restarts --------------------------------------------------------------------------------


@pytest.fixture
def hold_label(backends: Backends) -> Iterator[str]:
    """A node label no node has yet: pods selecting it wait Unschedulable until the test puts it on a node."""
    key = f"e2e.turnout.dev/hold-{backends.namespace}"
    yield key
    for node in backends.core.list_node(label_selector=key).items:
        backends.core.patch_node(node.metadata.name, {"metadata": {"labels": {key: None}}})


@pytest.mark.parametrize("phase", ["Progressing", "Verifying", "Baking"])
def test_operator_killed_mid_cutover_resumes_and_moves_the_service_once(
    own_operator: OperatorProcess, backends: Backends, hold_label: str, phase: str
) -> None:
    # Long enough phases to kill the operator in: Unschedulable is tolerated for 30 s (interval x failures),
    # verification takes 4 passing rounds, the bake 8 s.
    checks = {**FAST_ROLLOUT["checks"], "successThreshold": 4, "failureThreshold": 30}
    rollout = {**FAST_ROLLOUT, "bakeSeconds": 8, "checks": checks}
    healthy(backends, "chat", vllm_spec(rollout=rollout))
    new = vllm_spec(model="meta-llama/Llama-3.2-3B-Instruct", rollout=rollout)
    if phase == "Progressing":
        new["template"] = {"nodeSelector": {hold_label: "yes"}}
    with ServiceMoves.of(backends, "chat") as moves:
        backends.replace_spec("chat", new)
        backends.wait_phase("chat", phase, timeout=60)
        own_operator.kill()
        if phase == "Progressing":
            node = next(n for n in backends.core.list_node().items if "nvidia.com/gpu" in (n.status.allocatable or {}))
            backends.core.patch_node(node.metadata.name, {"metadata": {"labels": {hold_label: "yes"}}})
        own_operator.start()
        status = backends.wait_status("chat", timeout=90, activeColor="green", phase="Healthy")
    assert status["activeRevision"] == Backend.parse("chat", backends.namespace, new).revision
    assert moves.colors == ["green"], moves.colors


# -- 12. delete ------------------------------------------------------------------------------


@pytest.fixture
def volume(backends: Backends) -> Iterator[str]:
    """A PersistentVolume for the model claim to bind to (the test ground has no provisioner)."""
    with backends.volume_for("chat-models") as name:
        yield name


def test_delete_collects_deployments_and_service_and_keeps_the_model_claim(
    operator: OperatorProcess, backends: Backends, volume: str
) -> None:
    spec = ollama_spec(model="llama3:8b")
    spec["model"]["storage"] = {"create": True, "size": "10Gi", "accessModes": ["ReadWriteOnce"]}
    healthy(backends, "chat", spec)
    claim = backends.core.read_namespaced_persistent_volume_claim("chat-models", backends.namespace)
    assert claim.metadata.annotations["turnout.dev/created-by"] == "turnout"
    backends.delete("chat")
    wait_seconds(
        lambda: backends.deployment_replicas("chat-blue") is None and not _service_exists(backends, "chat"),
        timeout=60, what="Deployments and Service garbage-collected",
    )  # fmt: skip
    assert backends.core.read_namespaced_persistent_volume_claim("chat-models", backends.namespace)


def _service_exists(backends: Backends, name: str) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        backends.core.read_namespaced_service(name, backends.namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True
