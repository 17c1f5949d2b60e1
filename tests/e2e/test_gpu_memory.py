"""A vLLM revision that cannot fit in the GPUs' memory never holds a GPU: the user's story on a real
control plane, with GPU nodes labelled as NVIDIA GPU feature discovery labels an L4."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from testground.nodes import build_gpu_node
from testground.waiting import wait_for
from tests.e2e.harness import Backends, OperatorProcess, vllm_spec
from turnout.plugin import command

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

# meta-llama/Llama-3.1-8B-Instruct's config.json: num_hidden_layers, num_key_value_heads, and
# hidden_size / num_attention_heads; the parameter count from its model card.
LLAMA_8B = {"parameters": 8_030_261_248, "layers": 32, "kvHeads": 8, "headDim": 128}
L4_MIB = 23034
POOL = "turnout.dev/e2e-gpu-pool"


@pytest.fixture
def l4_nodes(api_client: client.ApiClient, namespace: str) -> Iterator[dict[str, str]]:
    """Two 1-GPU L4 nodes of a pool of this test's own; the node selector that lands pods on them."""
    core = client.CoreV1Api(api_client)
    names = [f"{namespace}-l4-{i}" for i in range(2)]
    for name in names:
        node = build_gpu_node(
            name, gpus=1, product="NVIDIA-L4", memory_mib=L4_MIB, instance_type="g6.xlarge", labels={POOL: namespace}
        )
        core.create_node(body=node)  # type: ignore[arg-type]  # the client takes plain dicts too
    try:
        yield {POOL: namespace}
    finally:
        for name in names:
            core.delete_node(name)


def llama_on(node_selector: dict[str, str], max_model_len: int) -> dict[str, Any]:
    spec = vllm_spec(vllm={"maxModelLen": max_model_len}, template={"nodeSelector": node_selector})
    return {**spec, "model": {**spec["model"], "architecture": LLAMA_8B}}


def test_a_context_too_long_for_the_l4s_fails_fast_and_the_suggested_one_serves(
    operator: OperatorProcess,
    backends: Backends,
    l4_nodes: dict[str, str],
    kube_cluster: object,
    capsys: pytest.CaptureFixture[str],
) -> None:
    backends.create("chat", llama_on(l4_nodes, 32768))
    degraded = backends.wait(
        "chat",
        lambda s: next(
            (c for c in s.get("conditions", []) if c["type"] == "Degraded" and c["reason"] == "InsufficientGPUMemory"),
            None,
        ),
        timeout=60,
        what="Degraded for InsufficientGPUMemory",
    )
    status = backends.status("chat")
    assert status["phase"] == "Degraded"
    assert status["lastFailureReason"] == "InsufficientGPUMemory"
    assert "NVIDIA-L4 offers 22.5 GiB \u00d7 0.90 = 20.2 GiB: use maxModelLen ≤ 26624" in degraded["message"]
    assert status["gpuMemory"]["fits"] is False
    assert status["gpuMemory"]["availableGiB"] == pytest.approx(20.24, abs=0.01)
    assert ("Warning", "InsufficientGPUMemory") in [(kind, reason) for kind, reason, _ in backends.events("chat")]
    # No engine pod, nor a Deployment that could make one.
    assert backends.deployment_replicas("chat-blue") is None
    assert backends.core.list_namespaced_pod(backends.namespace).items == []
    kubeconfig = str(kube_cluster.kubeconfig)  # type: ignore[attr-defined]
    capsys.readouterr()
    assert command.main(["--kubeconfig", kubeconfig, "status", "chat", "-n", backends.namespace]) == 0
    shown = capsys.readouterr().out
    assert f"GPU memory: {status['gpuMemory']['revision']} does not fit: needs 15.0 GiB weights" in shown

    backends.replace_spec("chat", llama_on(l4_nodes, 26624))
    status = backends.wait_phase("chat", "Healthy", timeout=90)
    assert status["gpuMemory"]["fits"] is True
    assert status["gpuMemory"]["message"].endswith(": fits")
    pods = backends.core.list_namespaced_pod(backends.namespace).items
    pool = backends.core.list_node(label_selector=f"{POOL}={backends.namespace}").items
    assert pods
    assert {pod.spec.node_name for pod in pods} <= {node.metadata.name for node in pool}
    wait_for(lambda: backends.condition("chat", "Degraded")["status"] == "False", timeout=30, what="Degraded cleared")
