"""What a careful reviewer tries against a shared operator, on a real control plane: what the API
server refuses or cannot create comes back as a clear condition at once, never as a silent wait."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from testground.waiting import wait_for
from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, vllm_spec

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]


def test_pods_a_quota_forbids_fail_fast_with_the_api_servers_message(
    operator: OperatorProcess, backends: Backends
) -> None:
    rollout = {**FAST_ROLLOUT, "readyTimeoutSeconds": 600}
    backends.create("chat", vllm_spec(rollout=rollout))
    backends.wait_phase("chat", "Healthy", timeout=60)
    # Room for blue's one GPU and no more: green's pod cannot even be created.
    backends.core.create_namespaced_resource_quota(
        backends.namespace,
        {"metadata": {"name": "gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": "1"}}},
    )
    started = time.monotonic()
    backends.replace_spec("chat", vllm_spec(model="meta-llama/Llama-3.2-3B-Instruct", rollout=rollout))
    status = backends.wait_failure("chat", timeout=90)
    assert time.monotonic() - started < 90  # the ready timeout is 600 s
    assert status["lastFailureReason"] == "FailedCreate"
    assert "exceeded quota" in status["lastFailureMessage"]
    assert "Deployment chat-green" in status["lastFailureMessage"]
    assert status["activeColor"] == "blue"
    assert backends.service_selector("chat")["turnout.dev/color"] == "blue"
    assert any(r == "RolledBack" and "exceeded quota" in m for _, r, m in backends.events("chat"))


def test_a_spec_the_api_server_refuses_rolls_back_once_with_its_message(
    operator: OperatorProcess, backends: Backends
) -> None:
    backends.create("chat", vllm_spec())
    backends.wait_phase("chat", "Healthy", timeout=60)
    # Both of turnout's validation layers take this name; the API server's Deployment validation does not.
    refused = vllm_spec(template={"env": [{"name": "A=B", "value": "1"}]})
    backends.replace_spec("chat", refused)
    status = backends.wait_failure("chat", timeout=30)
    assert status["lastFailureReason"] == "ApplyFailed"
    assert "A=B" in status["lastFailureMessage"]
    assert "Deployment chat-green" in status["lastFailureMessage"]
    assert status["activeColor"] == "blue"
    assert backends.service_selector("chat")["turnout.dev/color"] == "blue"
    rolled_back = [m for _, r, m in backends.events("chat") if r == "RolledBack"]
    assert len(rolled_back) == 1
    assert "A=B" in rolled_back[0]
    # Not tried again until the spec changes: a few reconciles later, green was never created.
    generation = backends.get("chat")["metadata"]["generation"]
    backends.wait("chat", lambda s: s.get("observedGeneration") == generation, timeout=10, what="observed")
    operator.wait_reconciles(backends, "chat", 3)
    assert backends.deployment_replicas("chat-green") is None
    assert backends.status("chat")["lastFailedRevision"] == status["lastFailedRevision"]
    assert backends.service_selector("chat")["turnout.dev/color"] == "blue"


def test_a_first_revision_the_api_server_refuses_is_reported_once(
    operator: OperatorProcess, backends: Backends
) -> None:
    backends.create("chat", vllm_spec(template={"env": [{"name": "A=B", "value": "1"}]}))
    status = backends.wait_phase("chat", "Degraded", timeout=30)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ApplyFailed"
    assert "A=B" in degraded["message"]
    assert [r for _, r, _ in backends.events("chat")].count("ApplyFailed") == 1
    operator.wait_reconciles(backends, "chat", 3)
    assert backends.deployment_replicas("chat-blue") is None  # not tried again
    assert backends.status("chat")["phase"] == "Degraded"
    backends.replace_spec("chat", vllm_spec())
    assert backends.wait_phase("chat", "Healthy", timeout=60)["activeColor"] == "blue"


def test_a_backend_never_takes_over_or_deletes_a_service_that_is_not_its_own(
    operator: OperatorProcess, backends: Backends
) -> None:
    backends.core.create_namespaced_service(
        backends.namespace,
        {
            "metadata": {"name": "chat", "labels": {"app": "legacy-chat"}},
            "spec": {"selector": {"app": "legacy-chat"}, "ports": [{"port": 80}]},
        },
    )
    backends.create("chat", vllm_spec())
    status = backends.wait_phase("chat", "Degraded", timeout=30)
    conflict = next(c for c in status["conditions"] if c["type"] == "Conflict")
    assert conflict["status"] == "True"
    assert conflict["message"].startswith("Service chat exists and belongs to no InferenceBackend")
    assert backends.deployment_replicas("chat-blue") is None  # nothing of the backend was written
    service = backends.core.read_namespaced_service("chat", backends.namespace)
    assert service.spec.selector == {"app": "legacy-chat"}
    assert not service.metadata.owner_references
    backends.delete("chat")
    wait_for(lambda: backends.gone("chat"), timeout=30, what="the backend gone")
    assert backends.core.read_namespaced_service("chat", backends.namespace).spec.selector == {"app": "legacy-chat"}


def test_two_backends_naming_one_service_do_not_take_it_from_each_other(
    operator: OperatorProcess, backends: Backends
) -> None:
    shared = vllm_spec(service={"name": "shared"})
    backends.create("first", shared)
    backends.wait_phase("first", "Healthy", timeout=60)
    backends.create("second", shared)
    status = backends.wait_phase("second", "Degraded", timeout=30)
    conflict = next(c for c in status["conditions"] if c["type"] == "Conflict")
    assert "Service shared exists and belongs to InferenceBackend first" in conflict["message"]
    assert backends.service_selector("shared") == {"turnout.dev/backend": "first", "turnout.dev/color": "blue"}
    assert backends.status("first")["phase"] == "Healthy"


def test_a_rotated_api_key_is_a_checked_cutover_and_each_color_keeps_one_key(
    operator: OperatorProcess, backends: Backends
) -> None:
    def put_key(value: str, *, first: bool = False) -> None:
        body = {"metadata": {"name": "vllm-key"}, "stringData": {"token": value}}
        if first:
            backends.core.create_namespaced_secret(backends.namespace, body)
        else:
            backends.core.replace_namespaced_secret("vllm-key", backends.namespace, body)

    def models_status(ip: str, key: str) -> int:
        answer = httpx.get(f"http://{ip}:8000/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=5)
        return answer.status_code

    put_key("key-one", first=True)
    rollout = {**FAST_ROLLOUT, "checks": {**FAST_ROLLOUT["checks"], "healthyIntervalSeconds": 5}}
    backends.create("chat", vllm_spec(rollout=rollout, vllm={"apiKeySecretRef": {"name": "vllm-key", "key": "token"}}))
    first = backends.wait_phase("chat", "Healthy", timeout=60)
    (blue,) = backends.pod_ips("chat", "blue")
    assert models_status(blue, "key-one") == 200

    put_key("key-two")  # no spec change: the key's digest is part of the revision
    second = backends.wait(
        "chat",
        lambda s: s if s.get("activeColor") == "green" and s.get("phase") == "Healthy" else None,
        timeout=90,
        what="a cutover to green carrying the new key",
    )
    assert second["activeRevision"] != first["activeRevision"]
    (green,) = backends.pod_ips("chat", "green")
    assert models_status(green, "key-two") == 200
    assert models_status(green, "key-one") == 401
    assert "Switched" in [r for _, r, _ in backends.events("chat")]


def test_a_revision_that_fails_after_its_bake_is_not_left_healthy(
    operator: OperatorProcess, backends: Backends
) -> None:
    rollout = {**FAST_ROLLOUT, "checks": {**FAST_ROLLOUT["checks"], "healthyIntervalSeconds": 5}}
    backends.create("chat", vllm_spec(rollout=rollout))
    backends.wait_phase("chat", "Healthy", timeout=60)
    # Green serves for 40 s (time to be switched to on a busy machine), then answers 503: long after its
    # 6 s bake and blue's 2 s scale-down delay.
    failing = vllm_spec(rollout=rollout, template={"podAnnotations": {"sim.turnout.dev/behaviour": "fail-after:40"}})
    backends.replace_spec("chat", failing)
    backends.wait(
        "chat", lambda s: s.get("activeColor") == "green" and s.get("phase") == "Healthy", timeout=60, what="green"
    )
    wait_for(lambda: backends.deployment_replicas("chat-blue") == 0, timeout=30, what="blue retired")
    status = backends.wait_phase("chat", "Degraded", timeout=90)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CheckFailed")
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert "answered 503" in degraded["message"]
    assert [r for _, r, _ in backends.events("chat")].count("CheckFailed") == 1
    assert operator.metric("turnout_serving_failures_total", reason="CheckFailed") >= 1


def test_an_api_key_ending_in_a_newline_is_named_by_its_secret_and_shown_nowhere(
    operator: OperatorProcess, backends: Backends
) -> None:
    canary = "canary-3f9c1d7e-never-print-me"
    # As `echo canary | kubectl create secret generic vllm-key --from-file=token=/dev/stdin` stores it.
    token = base64.b64encode(f"{canary}\n".encode()).decode()
    backends.core.create_namespaced_secret(
        backends.namespace, {"metadata": {"name": "vllm-key"}, "data": {"token": token}}
    )
    backends.create("chat", vllm_spec())
    backends.wait_phase("chat", "Healthy", timeout=60)
    backends.replace_spec("chat", vllm_spec(vllm={"apiKeySecretRef": {"name": "vllm-key", "key": "token"}}))
    status = backends.wait_failure("chat", timeout=60)
    assert status["lastFailureReason"] == "CheckFailed"
    assert (
        "Secret vllm-key, key token (spec.vllm.apiKeySecretRef), starts or ends with whitespace"
        in (status["lastFailureMessage"])
    )
    assert backends.service_selector("chat")["turnout.dev/color"] == "blue"
    readable = {
        "backend": json.dumps(backends.get("chat")),
        "events": json.dumps(backends.events("chat")),
        "log": operator.log_tail(100_000),
        "metrics": httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text,
    }
    assert [where for where, text in readable.items() if canary in text] == []
