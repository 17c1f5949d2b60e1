"""plan(): a vLLM revision that cannot fit in the GPUs' memory never gets a pod, and says what would fit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.rollout.world import World, backend, healthy_world
from turnout.api.status import Color, Phase
from turnout.rollout.actions import ApplyDeployment, ScaleDeployment
from turnout.rollout.observed import GpuNode, GpuNodes

BLUE, GREEN = Color.BLUE, Color.GREEN
LLAMA_8B: dict[str, Any] = {"parameters": 8_030_261_248, "layers": 32, "kvHeads": 8, "headDim": 128}
L4 = GpuNodes(nodes=(GpuNode("gpu-1", 23034, "NVIDIA-L4"), GpuNode("gpu-2", 23034, "NVIDIA-L4")))


def llama(max_model_len: int, *extra_args: str, **changes: Any) -> Any:
    return backend(
        model={"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "chat", "architecture": LLAMA_8B},
        vllm={"maxModelLen": max_model_len, "extraArgs": list(extra_args)},
        **changes,
    )


def degraded(world: World) -> tuple[str, str, str]:
    (found,) = [c for c in world.status.conditions if c.type == "Degraded"]
    return found.status, found.reason, found.message


def test_a_first_revision_too_large_for_the_nodes_gets_no_pod_and_says_what_fits() -> None:
    world = World()
    world.gpu_nodes = L4
    too_large = llama(32768)
    world.step(too_large)
    assert world.changes() == []
    assert world.status.phase == Phase.DEGRADED
    assert world.status.preview_color is None
    status, reason, message = degraded(world)
    assert (status, reason) == ("True", "InsufficientGPUMemory")
    assert "NVIDIA-L4 offers 22.5 GiB \u00d7 0.90 = 20.2 GiB: use maxModelLen ≤ 26624" in message
    assert world.status.last_failure_reason == "InsufficientGPUMemory"
    assert world.status.gpu_memory is not None
    assert world.status.gpu_memory.fits is False
    assert world.status.gpu_memory.revision == too_large.revision
    assert [e.reason for e in world.events()] == ["InsufficientGPUMemory"]
    world.step(too_large)  # judged again, said once
    assert world.changes() == []
    assert world.events() == []


def test_the_suggested_max_model_len_starts() -> None:
    world = World()
    world.gpu_nodes = L4
    world.step(llama(32768))
    fits = llama(26624)
    world.step(fits)
    assert world.changes() == [ApplyDeployment(BLUE, 1)]
    assert world.status.phase == Phase.PROGRESSING
    assert world.status.gpu_memory is not None
    assert world.status.gpu_memory.fits is True


def test_a_new_revision_too_large_leaves_the_serving_one_alone() -> None:
    world = healthy_world(backend())
    world.gpu_nodes = L4
    world.step(llama(32768))
    assert world.changes() == []
    assert world.status.active_color == BLUE
    assert world.status.preview_color is None
    assert degraded(world)[1] == "InsufficientGPUMemory"


def test_a_superseded_preview_is_scaled_down_when_the_newest_spec_cannot_fit() -> None:
    world = healthy_world(backend())
    world.gpu_nodes = L4
    world.step(llama(16384))
    assert world.changes() == [ApplyDeployment(GREEN, 1)]
    world.step(llama(65536))
    assert world.changes() == [ScaleDeployment(GREEN, 0)]
    assert world.status.preview_color is None


def test_without_the_node_label_nothing_is_refused_and_the_status_says_why() -> None:
    world = World()
    world.gpu_nodes = GpuNodes(nodes=(GpuNode("gpu-1", 23034, "NVIDIA-L4"), GpuNode("gpu-9", None)))
    world.step(llama(131072))
    assert world.changes() == [ApplyDeployment(BLUE, 1)]
    assert world.status.gpu_memory is not None
    assert world.status.gpu_memory.fits is None
    assert "node gpu-9 has no nvidia.com/gpu.memory label" in world.status.gpu_memory.message


def test_resources_gpu_memory_overrides_the_nodes() -> None:
    world = World()
    world.gpu_nodes = None  # not read: the spec says
    world.step(llama(8192, resources={"gpus": 1, "gpuMemory": "16Gi"}))
    assert world.changes() == []
    assert "resources.gpuMemory offers 16.0 GiB" in degraded(world)[2]


def test_without_architecture_facts_the_status_says_it_was_not_estimated() -> None:
    world = World()
    world.gpu_nodes = L4
    world.step(backend(vllm={"maxModelLen": 131072}))
    assert world.changes() == [ApplyDeployment(BLUE, 1)]
    assert world.status.gpu_memory is not None
    assert world.status.gpu_memory.message.startswith("not estimated: set model.architecture")


def test_a_quantization_flag_makes_the_estimate_unsure() -> None:
    world = World()
    world.gpu_nodes = L4
    world.step(llama(131072, "--quantization=awq"))
    assert world.changes() == [ApplyDeployment(BLUE, 1)]
    assert world.status.gpu_memory is not None
    assert "--quantization" in world.status.gpu_memory.message


def test_the_refused_revision_starts_once_the_facts_say_it_fits_and_is_no_longer_called_failed() -> None:
    world = healthy_world(backend())
    refused = llama(16384, resources={"gpus": 1, "gpuMemory": "16Gi"})
    world.step(refused)
    assert world.changes() == []
    assert (world.status.last_failed_revision, world.status.last_failure_reason) == (
        refused.revision,
        "InsufficientGPUMemory",
    )
    world.advance(60)
    world.step(refused)  # judged again, not waited out as a failed revision
    assert world.changes() == []
    assert world.events() == []
    bigger = llama(16384, resources={"gpus": 1, "gpuMemory": "24Gi"})
    assert bigger.revision == refused.revision  # the GPU's memory is no part of the revision
    world.step(bigger)
    assert world.changes() == [ApplyDeployment(GREEN, 1)]
    assert world.status.last_failed_revision is None
    assert world.status.last_failure_reason is None


QWEN_7B: dict[str, Any] = {
    # Qwen2.5-7B-Instruct's config.json; 7.62B parameters (the model card).
    "parameters": 7_615_616_512,
    "layers": 28,
    "kvHeads": 4,
    "headDim": 128,
    "vocabSize": 152064,
}


def qwen(*extra_args: str, **changes: Any) -> Any:
    return backend(
        model={"name": "Qwen/Qwen2.5-7B-Instruct", "servedName": "chat", "architecture": QWEN_7B},
        vllm={"maxModelLen": 16384, "extraArgs": list(extra_args)},
        **changes,
    )


@pytest.mark.parametrize("spelling", [["--max-num-seqs=2048"], ["--max_num_seqs=2048"], ["--max-num-se", "2048"]])
def test_max_num_seqs_is_read_from_the_extra_args_in_each_spelling_vllm_reads(spelling: list[str]) -> None:
    world = World()
    world.gpu_nodes = L4
    world.step(qwen(*spelling))
    assert world.changes() == []
    assert "activations and runtime (maxNumSeqs 2048) per GPU" in degraded(world)[2]


def test_vllms_default_max_num_seqs_fits_where_many_more_sequences_do_not() -> None:
    world = World()
    world.gpu_nodes = L4
    world.step(qwen())
    assert world.changes() == [ApplyDeployment(BLUE, 1)]
    assert world.status.gpu_memory is not None
    assert "(maxNumSeqs 256) per GPU" in world.status.gpu_memory.message


def test_throughput_mode_doubles_vllms_default_and_an_h100s_is_larger() -> None:
    h100 = GpuNodes(nodes=(GpuNode("gpu-1", 81559, "NVIDIA-H100-80GB-HBM3"),))
    world = World()
    world.gpu_nodes = h100
    world.step(qwen("--performance-mode=throughput"))
    assert world.status.gpu_memory is not None
    assert "(maxNumSeqs 2048) per GPU" in world.status.gpu_memory.message


def test_a_max_num_seqs_that_is_no_number_makes_the_estimate_unsure() -> None:
    world = World()
    world.gpu_nodes = L4
    world.step(qwen("--max-num-seqs=many"))
    assert world.changes() == [ApplyDeployment(BLUE, 1)]
    assert world.status.gpu_memory is not None
    assert world.status.gpu_memory.fits is None
    assert "--max-num-seqs" in world.status.gpu_memory.message


def test_estimate_only_facts_leave_the_revision_as_it_was() -> None:
    with_vocabulary = qwen()
    without = backend(
        model={
            "name": "Qwen/Qwen2.5-7B-Instruct",
            "servedName": "chat",
            "architecture": {k: v for k, v in QWEN_7B.items() if k != "vocabSize"},
        },
        vllm={"maxModelLen": 16384},
    )
    assert with_vocabulary.revision == without.revision
