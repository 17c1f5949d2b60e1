"""What a careful reviewer tries against a shared operator, on a real control plane: what the API
server refuses or cannot create comes back as a clear condition at once, never as a silent wait."""

from __future__ import annotations

import time
from typing import Any

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
