"""An embedding model's story on a real control plane: moved from Ollama to vLLM under the same name
while an OpenAI embeddings client keeps getting vectors, and a model whose vectors have another length
refused before the switch, unless the spec allows it.

The simulators serve embeddings of the length their pod's `sim.turnout.dev/embedding-dimension`
annotation gives (`template.podAnnotations`), as the real model would answer its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.harness import FAST_ROLLOUT, Backends, EmbeddingClient, OperatorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

DIMENSION = "sim.turnout.dev/embedding-dimension"


def embedding_spec(engine: str, dimension: int, model: str = "nomic-embed-text", **rollout: Any) -> dict[str, Any]:
    """An embedding backend served as "embed"; vLLM loads `vllm.model`, Ollama `ollama.model`."""
    spec: dict[str, Any] = {
        "engine": engine,
        "model": {"name": model, "servedName": "embed", "task": "embedding"},
        "vllm": {"model": "nomic-ai/nomic-embed-text-v1.5" if model == "nomic-embed-text" else model},
        "rollout": {**FAST_ROLLOUT, **rollout},
        "template": {"podAnnotations": {DIMENSION: str(dimension)}},
    }
    if engine == "vllm":
        spec["resources"] = {"gpus": 1}
    return spec


def dimensions(status: dict[str, Any]) -> dict[str, int | None]:
    return {found["revision"]: found.get("embeddingDimension") for found in status.get("servedModels") or []}


def test_an_embedding_backend_moves_from_ollama_to_vllm_with_vectors_throughout(
    operator: OperatorProcess, backends: Backends
) -> None:
    backends.create("embed", embedding_spec("ollama", 768))
    status = backends.wait_phase("embed", "Healthy", timeout=60)
    assert dimensions(status) == {status["activeRevision"]: 768}
    blue = backends.pod_ips("embed", "blue")
    with EmbeddingClient(backends, "embed", "embed") as clients:
        backends.wait(
            "embed", lambda _: clients.answered_by.keys() & blue, timeout=30, what="the client answered by Ollama"
        )
        backends.replace_spec("embed", embedding_spec("vllm", 768))
        status = backends.wait_status("embed", timeout=90, activeColor="green", phase="Healthy", activeEngine="vllm")
        green = backends.pod_ips("embed", "green")
        backends.wait(
            "embed", lambda _: clients.answered_by.keys() & green, timeout=30, what="the client answered by vLLM"
        )
    assert clients.failures == [], clients.failures[:5]
    assert clients.models == {"embed"}
    assert clients.dimensions == {768}
    assert status["activeModel"] == "nomic-ai/nomic-embed-text-v1.5"
    assert dimensions(status)[status["activeRevision"]] == 768


def test_a_model_of_another_dimension_is_refused_before_the_switch_unless_allowed(
    operator: OperatorProcess, backends: Backends
) -> None:
    backends.create("embed", embedding_spec("vllm", 768))
    served = backends.wait_phase("embed", "Healthy", timeout=60)["activeRevision"]
    with EmbeddingClient(backends, "embed", "embed") as clients:
        backends.replace_spec("embed", embedding_spec("vllm", 1024, model="BAAI/bge-large-en-v1.5"))
        status = backends.wait_failure("embed", timeout=60)
        assert status["lastFailureReason"] == "EmbeddingDimensionChanged"
        message = status["lastFailureMessage"]
        assert "answers embeddings of dimension 1024" in message
        assert f"the serving revision {served} of dimension 768" in message
        assert "rollout.allowDimensionChange: true" in message
        assert status["activeColor"] == "blue"
        assert backends.service_selector("embed")["turnout.dev/color"] == "blue"
        assert backends.condition("embed", "RolledBack")["reason"] == "EmbeddingDimensionChanged"
        assert backends.deployment_replicas("embed-green") == 0
        refused_while = set(clients.dimensions)

        backends.replace_spec(
            "embed", embedding_spec("vllm", 1024, model="BAAI/bge-large-en-v1.5", allowDimensionChange=True)
        )
        status = backends.wait_status("embed", timeout=90, activeColor="green", phase="Healthy")
    assert refused_while == {768}  # no client got a vector of the refused model
    assert dimensions(status)[status["activeRevision"]] == 1024
    assert status["activeModel"] == "BAAI/bge-large-en-v1.5"
    assert clients.failures == [], clients.failures[:5]
    assert clients.dimensions == {768, 1024}
