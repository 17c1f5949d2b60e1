"""plan(): a vLLM revision on a claim without model.architecture has its config.json read from the claim
by an inspector pod, once, before its pods; the estimate uses what it says; nothing of the inspector
stays behind, whatever happens meanwhile."""

from __future__ import annotations

from typing import Any

from tests.unit.rollout.world import PASS, World, backend
from turnout.api.backend import InvalidSpec
from turnout.api.labels import inspector_name
from turnout.api.status import Color, Phase
from turnout.engines.model_files import ModelFacts
from turnout.rollout.actions import ApplyDeployment, CreateInspector, DeleteInspector
from turnout.rollout.model_config import INSPECTION_SECONDS
from turnout.rollout.observed import (
    ApplyRejection,
    FailureReason,
    GpuNode,
    GpuNodes,
    ModelFilesRead,
    PodFailure,
)

BLUE, GREEN = Color.BLUE, Color.GREEN
L4 = GpuNodes(nodes=(GpuNode("gpu-1", 23034, "NVIDIA-L4"),))
CLAIM: dict[str, Any] = {"claimName": "models"}
# Llama-3.1-70B's config.json and index: far too large for one L4.
LLAMA_70B = ModelFacts(
    parameters=70_553_706_496,
    layers=80,
    kv_heads=8,
    head_dim=128,
    vocab_size=128256,
    checkpoint_bytes=141_107_412_992,
    quantization=None,
)
LLAMA_8B = ModelFacts(8_030_261_248, 32, 8, 128, 128256, 16_060_522_496, None)
SOURCE = "config.json on claim models"


def on_claim(model: str = "meta-llama/Llama-3.1-70B-Instruct", **changes: Any) -> Any:
    return backend(model={"name": model, "servedName": "chat", "storage": CLAIM}, **changes)


def read(facts: ModelFacts) -> ModelFilesRead:
    return ModelFilesRead(facts=facts, source=SOURCE, path="/data/models/huggingface/hub/models--m/snapshots/c")


def degraded(world: World) -> tuple[str, str, str]:
    (found,) = [c for c in world.status.conditions if c.type == "Degraded"]
    return found.status, found.reason, found.message


def test_the_claims_config_refuses_a_model_too_large_before_any_pod_and_the_inspector_goes() -> None:
    world = World()
    world.gpu_nodes = L4
    desired = on_claim()
    world.step(desired)
    assert world.changes() == [CreateInspector()]
    assert world.status.phase == Phase.PROGRESSING
    assert world.status.model_files is not None
    assert world.status.model_files.revision == desired.revision
    progressing = [c for c in world.status.conditions if c.type == "Progressing"]
    assert progressing[0].reason == "ReadingModelConfig"
    world.step(desired)  # not Ready yet: waits, asks for nothing more
    assert world.changes() == []
    world.inspector_ready(read(LLAMA_70B))
    world.step(desired)
    assert world.changes() == [DeleteInspector(inspector_name(desired))]
    status, reason, message = degraded(world)
    assert (status, reason) == ("True", "InsufficientGPUMemory")
    assert message.startswith(f"revision {desired.revision}: InsufficientGPUMemory: {SOURCE}: needs 131.4 GiB weights")
    assert world.status.gpu_memory is not None
    assert world.status.gpu_memory.source == SOURCE
    files = world.status.model_files
    assert files is not None
    assert files.complete
    assert (files.layers, files.kv_heads, files.head_dim, files.vocab_size) == (80, 8, 128, 128256)
    assert files.message.startswith(f"read {SOURCE} (/data/models/huggingface/hub/models--m/snapshots/c): 70.55B")
    world.step(desired)  # read once per revision: judged again from the status, no inspector again
    assert world.changes() == []


def test_a_model_that_fits_starts_once_its_config_is_read() -> None:
    world = World()
    world.gpu_nodes = L4
    desired = on_claim("meta-llama/Llama-3.1-8B-Instruct")
    world.step(desired)
    world.inspector_ready(read(LLAMA_8B))
    world.step(desired)
    assert world.changes() == [ApplyDeployment(BLUE, 1), DeleteInspector(inspector_name(desired))]
    assert world.status.gpu_memory is not None
    assert world.status.gpu_memory.fits is True


def test_files_not_on_the_claim_yet_leave_the_estimate_unsure_and_the_revision_starts() -> None:
    world = World()
    world.gpu_nodes = L4
    desired = on_claim()
    world.step(desired)
    missing = "the model is not downloaded on claim models yet (/data/models/huggingface/hub/models--x/refs/main ...)"
    world.inspector_ready(ModelFilesRead(problem=missing))
    world.step(desired)
    assert ApplyDeployment(BLUE, 1) in world.changes()
    assert DeleteInspector(inspector_name(desired)) in world.changes()
    assert world.status.gpu_memory is not None
    assert world.status.gpu_memory.fits is None
    assert world.status.gpu_memory.message.startswith(f"not estimated: {missing}")


def test_an_inspector_never_ready_is_given_up_after_its_bound() -> None:
    world = World()
    world.gpu_nodes = L4
    desired = on_claim()
    world.step(desired)
    world.advance(INSPECTION_SECONDS - 1)
    world.step(desired)
    assert world.changes() == []
    world.advance(2)
    world.step(desired)
    assert ApplyDeployment(BLUE, 1) in world.changes()
    assert DeleteInspector(inspector_name(desired)) in world.changes()
    assert world.status.model_files is not None
    assert f"did not serve the model's files within {INSPECTION_SECONDS} s (it was not Ready)" in (
        world.status.model_files.message
    )


def test_a_failing_inspector_is_given_up_at_once() -> None:
    world = World()
    desired = on_claim()
    world.step(desired)
    name = inspector_name(desired)
    failure = PodFailure(name, FailureReason.IMAGE_PULL_BACK_OFF, "container inspector: ImagePullBackOff")
    world.inspectors[name] = world.inspectors[name].__class__(name, desired.revision, failures=(failure,))
    world.step(desired)
    assert ApplyDeployment(BLUE, 1) in world.changes()
    assert world.status.model_files is not None
    assert "the inspector pod for claim models failed: container inspector: ImagePullBackOff" in (
        world.status.model_files.message
    )


def test_an_inspector_the_api_server_refuses_leaves_the_estimate_unsure_not_the_revision_failed() -> None:
    world = World()
    desired = on_claim()
    world.rejected = ApplyRejection(None, f"Pod {inspector_name(desired)}", 'pods is forbidden: cannot create "pods"')
    world.step(desired)
    assert ApplyDeployment(BLUE, 1) in world.changes()
    assert world.status.last_failed_revision is None
    assert world.status.model_files is not None
    assert "the API server refused the inspector pod for claim models: pods is forbidden" in (
        world.status.model_files.message
    )


def test_a_spec_change_while_reading_drops_the_old_inspector_and_reads_for_the_new_revision() -> None:
    world = World()
    first = on_claim()
    world.step(first)
    second = on_claim("meta-llama/Llama-3.1-8B-Instruct")
    world.step(second)
    assert world.changes() == [CreateInspector(), DeleteInspector(inspector_name(first))]
    assert world.status.model_files is not None
    assert world.status.model_files.revision == second.revision


def test_architecture_in_the_spec_wins_and_an_inspector_left_over_is_deleted() -> None:
    world = World()
    world.gpu_nodes = L4
    world.step(on_claim())
    declared = backend(
        model={
            "name": "meta-llama/Llama-3.1-70B-Instruct",
            "servedName": "chat",
            "storage": CLAIM,
            "architecture": {"parameters": 8_030_261_248, "layers": 32, "kvHeads": 8, "headDim": 128},
        }
    )
    world.step(declared)
    assert DeleteInspector(inspector_name(on_claim())) in world.changes()
    assert ApplyDeployment(BLUE, 1) in world.changes()
    assert world.status.gpu_memory is not None
    assert world.status.gpu_memory.source == "spec"


def test_an_invalid_spec_while_reading_deletes_the_inspector() -> None:
    world = World()
    desired = on_claim()
    world.step(desired)
    world.step(InvalidSpec("spec.vllm.extraArgs: no"))
    assert world.changes() == [DeleteInspector(inspector_name(desired))]


def test_no_claim_no_inspector_and_a_serving_revision_is_never_inspected_again() -> None:
    world = World()
    world.step(backend())
    assert CreateInspector() not in world.changes()
    desired = on_claim("meta-llama/Llama-3.1-8B-Instruct")
    serving = World()
    serving.step(desired)
    serving.inspector_ready(read(LLAMA_8B))
    serving.step(desired)
    serving.ready(BLUE)
    serving.step(desired)
    for _ in range(3):
        serving.step(desired, PASS)
    assert serving.status.phase == Phase.HEALTHY
    serving.advance(3600)
    serving.step(desired)
    assert serving.changes() == []


def test_an_ollama_backend_on_a_claim_is_not_inspected() -> None:
    world = World()
    world.step(backend(engine="ollama", model={"name": "llama3:8b", "storage": CLAIM}, resources={"gpus": 0}))
    assert CreateInspector() not in world.changes()


def test_an_unschedulable_inspector_is_waited_for_until_the_bound() -> None:
    world = World()
    desired = on_claim()
    world.step(desired)
    name = inspector_name(desired)
    pending = PodFailure(name, FailureReason.UNSCHEDULABLE, "0/3 nodes are available: 3 Insufficient cpu.")
    world.inspectors[name] = world.inspectors[name].__class__(name, desired.revision, failures=(pending,))
    world.step(desired)
    assert world.changes() == []
    world.advance(INSPECTION_SECONDS + 1)
    world.step(desired)
    assert ApplyDeployment(BLUE, 1) in world.changes()
    assert world.status.model_files is not None
    assert "(0/3 nodes are available: 3 Insufficient cpu.)" in world.status.model_files.message


def test_a_claim_turnout_creates_now_holds_no_model_yet_and_is_not_inspected() -> None:
    world = World()
    fresh = backend(model={"name": "org/model", "servedName": "chat", "storage": {"create": True, "size": "10Gi"}})
    world.step(fresh)
    assert CreateInspector() not in world.changes()
    assert ApplyDeployment(BLUE, 1) in world.changes()
    assert world.status.model_files is not None
    assert world.status.model_files.message == "claim chat-models is created now: the model is not on it yet"
