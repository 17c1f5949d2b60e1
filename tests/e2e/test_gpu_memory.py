"""A vLLM revision that cannot fit in the GPUs' memory never holds a GPU: the user's story on a real
control plane, with GPU nodes labelled as NVIDIA GPU feature discovery labels an L4."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
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
# meta-llama/Llama-3.1-70B-Instruct's config.json (the keys that matter) and its index's total_size.
LLAMA_70B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 8192,
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
    "num_key_value_heads": 8,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}
LLAMA_70B_BYTES = 141_107_412_992
LLAMA_70B = "meta-llama/Llama-3.1-70B-Instruct"
COMMIT = "1605565b47bb9346c5515c34102e054115b4f98b"


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


@pytest.fixture
def model_claim(backends: Backends, tmp_path: Path) -> Iterator[Path]:
    """Claim `models`, bound to a hostPath volume: the directory returned, where the test puts the model's
    files as vLLM's hub cache keeps them (the test ground serves it to turnout's inspector pod)."""
    directory = tmp_path / "claim"
    directory.mkdir()
    volume = f"models-{backends.namespace}"
    access = {"accessModes": ["ReadWriteMany"], "storageClassName": ""}
    backends.core.create_persistent_volume(
        {
            "metadata": {"name": volume},
            "spec": {
                **access,
                "capacity": {"storage": "200Gi"},
                "hostPath": {"path": str(directory)},
                "claimRef": {"namespace": backends.namespace, "name": "models"},
            },
        }
    )
    backends.core.create_namespaced_persistent_volume_claim(
        backends.namespace,
        {"metadata": {"name": "models"}, "spec": {**access, "resources": {"requests": {"storage": "200Gi"}}}},
    )
    try:
        wait_for(
            lambda: (
                backends.core.read_namespaced_persistent_volume_claim("models", backends.namespace).status.phase
                == "Bound"
            ),
            timeout=30,
            what="claim models bound",
        )
        yield directory
    finally:
        backends.core.delete_persistent_volume(volume)


def put_in_hub_cache(claim: Path, model: str, files: dict[str, Any]) -> None:
    """The model's files where `vllm serve <model>` downloads them: HF_HOME on the claim, the hub cache's layout."""
    repo = claim / "huggingface" / "hub" / f"models--{model.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for name, content in files.items():
        (snapshot / name).write_text(json.dumps(content))


def llama_on_claim(node_selector: dict[str, str], model: str) -> dict[str, Any]:
    spec = vllm_spec(model, template={"nodeSelector": node_selector})
    return {**spec, "model": {**spec["model"], "storage": {"claimName": "models"}}}


def test_a_model_too_large_per_its_config_on_the_claim_fails_fast_and_the_inspector_is_gone(
    operator: OperatorProcess, backends: Backends, l4_nodes: dict[str, str], model_claim: Path
) -> None:
    put_in_hub_cache(
        model_claim,
        LLAMA_70B,
        {
            "config.json": LLAMA_70B_CONFIG,
            "model.safetensors.index.json": {"metadata": {"total_size": LLAMA_70B_BYTES}},
        },
    )
    backends.create("chat", llama_on_claim(l4_nodes, LLAMA_70B))
    degraded = backends.wait(
        "chat",
        lambda s: next(
            (c for c in s.get("conditions", []) if c["type"] == "Degraded" and c["reason"] == "InsufficientGPUMemory"),
            None,
        ),
        timeout=90,
        what="Degraded for InsufficientGPUMemory",
    )
    # The claim's numbers: 70.55B bfloat16 parameters, 80 layers of 8 KV heads of 128.
    assert (
        "config.json on claim models: needs 131.4 GiB weights + 2.5 GiB KV cache (maxModelLen 8192)"
        in (degraded["message"])
    )
    assert "NVIDIA-L4 offers 22.5 GiB \u00d7 0.90 = 20.2 GiB" in degraded["message"]
    status = backends.status("chat")
    assert status["gpuMemory"]["source"] == "config.json on claim models"
    files = status["modelFiles"]
    assert (files["layers"], files["kvHeads"], files["headDim"], files["vocabSize"]) == (80, 8, 128, 128256)
    assert files["path"].endswith(f"/models--meta-llama--Llama-3.1-70B-Instruct/snapshots/{COMMIT}")
    assert backends.deployment_replicas("chat-blue") is None
    # No engine pod was made, and the inspector pod that read the claim is gone.
    wait_for(
        lambda: backends.core.list_namespaced_pod(backends.namespace).items == [],
        timeout=30,
        what="no pod left in the namespace",
    )


def test_a_claim_without_the_models_files_yet_leaves_the_estimate_unsure_and_the_revision_serves(
    operator: OperatorProcess, backends: Backends, l4_nodes: dict[str, str], model_claim: Path
) -> None:
    backends.create("chat", llama_on_claim(l4_nodes, LLAMA_70B))
    status = backends.wait_phase("chat", "Healthy", timeout=90)
    assert "fits" not in status["gpuMemory"]  # not judged
    assert status["gpuMemory"]["message"].startswith("not estimated: the model is not downloaded on claim models yet")
    assert status["modelFiles"]["complete"] is True
    pods = backends.core.list_namespaced_pod(backends.namespace).items
    assert pods
    assert all(pod.metadata.labels.get("turnout.dev/color") == "blue" for pod in pods), [p.metadata.name for p in pods]


def test_deleting_the_backend_while_its_model_is_read_leaves_no_pod_behind(
    operator: OperatorProcess, backends: Backends, model_claim: Path
) -> None:
    # No node matches: the inspector pod waits to be scheduled, and the backend goes meanwhile.
    backends.create("chat", llama_on_claim({POOL: f"{backends.namespace}-nowhere"}, LLAMA_70B))
    reading = backends.wait(
        "chat",
        lambda s: next(
            (c for c in s.get("conditions", []) if c["type"] == "Progressing" and c["reason"] == "ReadingModelConfig"),
            None,
        ),
        timeout=60,
        what="Progressing while reading the model's config",
    )
    assert "reading the model's config.json from claim models (pod chat-inspect-" in reading["message"]
    inspectors = backends.core.list_namespaced_pod(
        backends.namespace, label_selector="turnout.dev/inspects=model-config"
    ).items
    assert [pod.metadata.owner_references[0].kind for pod in inspectors] == ["InferenceBackend"]
    backends.delete("chat")
    wait_for(
        lambda: backends.core.list_namespaced_pod(backends.namespace).items == [],
        timeout=60,
        what="the inspector pod collected with its backend",
    )


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
