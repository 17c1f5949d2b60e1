"""What a careful reviewer tries against a shared operator, on a real control plane: what the API
server refuses or cannot create comes back as a clear condition at once, never as a silent wait."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, vllm_spec

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def engines_are_simulated(kube_cluster: Any) -> None:
    """These stories need the test ground's simulated engines and fake GPU nodes."""
    if not kube_cluster.local:
        pytest.skip("needs the local test ground: simulated engines on the pod IPs")


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
    # Not tried again until the spec changes: a few reconciles later, still one Event and no error.
    generation = backends.get("chat")["metadata"]["generation"]
    backends.wait("chat", lambda s: s.get("observedGeneration") == generation, timeout=10, what="observed")
    operator.wait_reconciles(backends, "chat", 3)
    assert [r for _, r, _ in backends.events("chat")].count("RolledBack") == 1
    assert operator.metric("turnout_reconcile_errors_total", kind="ApiException") == 0


def test_a_first_revision_the_api_server_refuses_is_reported_once(
    operator: OperatorProcess, backends: Backends
) -> None:
    backends.create("chat", vllm_spec(template={"env": [{"name": "A=B", "value": "1"}]}))
    status = backends.wait_phase("chat", "Degraded", timeout=30)
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["reason"] == "ApplyFailed"
    assert "A=B" in degraded["message"]
    operator.wait_reconciles(backends, "chat", 3)
    assert [r for _, r, _ in backends.events("chat")].count("ApplyFailed") == 1
    backends.replace_spec("chat", vllm_spec())
    assert backends.wait_phase("chat", "Healthy", timeout=60)["activeColor"] == "blue"


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
