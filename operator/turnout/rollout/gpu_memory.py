"""The GPU memory gate of a vLLM revision: the estimate of `engines.gpu_memory` over the spec and the
GPU nodes observed, as the status reports it. Pure."""

from __future__ import annotations

from kubernetes.utils.quantity import parse_quantity

from turnout.api.backend import Backend
from turnout.api.spec import Dtype, Engine, Task
from turnout.api.status import GpuMemoryStatus, InferenceBackendStatus, ModelFilesStatus
from turnout.engines.gpu_memory import (
    GIB,
    MIB,
    UNCERTAIN_FLAGS,
    Architecture,
    GpuOffer,
    Layout,
    default_max_num_seqs,
    estimate,
)
from turnout.engines.vllm import extra_arg_value
from turnout.rollout.model_config import has_facts, inspects, model_config_of
from turnout.rollout.observed import GpuNodes

NO_ARCHITECTURE = (
    "not estimated: set model.architecture (parameters, layers, kvHeads, headDim from the model's "
    "config.json), or keep the model on a claim (model.storage) where turnout reads its config.json, "
    "to have a revision that cannot fit refused before it holds GPUs"
)
SPEC = "spec"
"""The source of facts declared in `model.architecture`."""


def needs_gpu_nodes(backend: Backend, status: InferenceBackendStatus, read_now: bool = False) -> bool:
    """The estimate of this backend's revision reads the GPU nodes (no `resources.gpuMemory` given): it
    has size facts, from the spec or from the model's files (read before, or `read_now`)."""
    spec = backend.spec
    if spec.engine is not Engine.VLLM or spec.resources.gpu_memory is not None:
        return False
    return spec.model.architecture is not None or read_now or has_facts(model_config_of(backend, status))


def gpu_memory_status(
    backend: Backend, gpu_nodes: GpuNodes | None, status: InferenceBackendStatus | None = None
) -> GpuMemoryStatus | None:
    """The estimate for the spec's revision, from `model.architecture` or else what `status.modelFiles`
    read from the model's files; None for an engine it does not apply to (Ollama)."""
    spec = backend.spec
    if spec.engine is not Engine.VLLM:
        return None
    facts = _facts(backend, status)
    if isinstance(facts, str):
        return GpuMemoryStatus(revision=backend.revision, message=facts)
    architecture, source = facts
    uncertain = [w for w in spec.vllm.extra_args if w.split("=", 1)[0] in UNCERTAIN_FLAGS]
    if uncertain:
        return GpuMemoryStatus(
            revision=backend.revision,
            message=f"not estimated: vllm.extraArgs has {uncertain[0].split('=', 1)[0]}, which changes what "
            "the weights or the KV cache take beyond what model.architecture says",
        )
    offer, unknown = _offer(backend, gpu_nodes)
    max_num_seqs = max_num_seqs_of(spec.vllm.extra_args, offer)
    if max_num_seqs is None:
        return GpuMemoryStatus(
            revision=backend.revision,
            message="not estimated: vllm.extraArgs gives --max-num-seqs a value that is not a positive whole number",
        )
    layout = Layout(
        dtype_bytes=4 if spec.vllm.dtype in (Dtype.FLOAT, Dtype.FLOAT32) else 2,
        tensor_parallel_size=backend.profile.tensor_parallel_size(backend) or 1,
        max_model_len=spec.vllm.max_model_len,
        gpu_memory_utilization=spec.vllm.gpu_memory_utilization,
        gpus=backend.gpus,
        max_num_seqs=max_num_seqs,
        samples=spec.model.task is not Task.EMBEDDING,
    )
    found = estimate(architecture, layout, offer, unknown)
    return GpuMemoryStatus(
        revision=backend.revision,
        weights_gib=_gib(found.weights_bytes),
        kv_cache_gib=_gib(found.kv_cache_bytes),
        allowance_gib=_gib(found.allowance_bytes),
        needed_gib=_gib(found.needed_bytes),
        available_gib=_gib(found.available_bytes) if found.available_bytes is not None else None,
        fits=found.fits,
        message=found.message if source == SPEC else f"{source}: {found.message}",
        source=source,
    )


def _facts(backend: Backend, status: InferenceBackendStatus | None) -> tuple[Architecture, str] | str:
    """The model's size facts and where they came from (the spec wins over the files), or why there are none."""
    declared = backend.spec.model.architecture
    if declared is not None:
        architecture = Architecture(
            parameters=declared.parameters,
            layers=declared.layers,
            kv_heads=declared.kv_heads,
            head_dim=declared.head_dim,
            vocab_size=declared.vocab_size,
        )
        return architecture, SPEC
    read = model_config_of(backend, status) if status is not None and inspects(backend) else None
    if read is None:
        return NO_ARCHITECTURE
    if not has_facts(read):
        return f"not estimated: {read.message}; set model.architecture to estimate without the files"
    return _read_architecture(read), read.source


def _read_architecture(read: ModelFilesStatus) -> Architecture:
    assert read.layers is not None
    assert read.kv_heads is not None
    assert read.head_dim is not None
    weights = read.weights_bytes or 0
    return Architecture(
        # The estimate's weights are parameters x the layout's dtype, as vLLM casts them; a quantized
        # checkpoint's weights are held as stored.
        parameters=read.parameters or max(1, weights // 2),
        layers=read.layers,
        kv_heads=read.kv_heads,
        head_dim=read.head_dim,
        vocab_size=read.vocab_size,
        weights_bytes=None if read.parameters else weights,
    )


def max_num_seqs_of(extra_args: list[str], gpu: GpuOffer | None) -> int | None:
    """vLLM's `max_num_seqs` for these extra arguments on `gpu`: `--max-num-seqs` in any spelling vLLM
    reads, else vLLM's own default, doubled by `--performance-mode=throughput` as vLLM doubles it.
    None when the value given is not a positive whole number (vLLM would refuse to start)."""
    given = extra_arg_value(extra_args, "--max-num-seqs")
    if given is not None:
        return int(given) if given.isdigit() and int(given) > 0 else None
    default = default_max_num_seqs(gpu)
    return 2 * default if extra_arg_value(extra_args, "--performance-mode") == "throughput" else default


def _offer(backend: Backend, gpu_nodes: GpuNodes | None) -> tuple[GpuOffer | None, str]:
    """The GPU to judge against, or None and why there is none.

    Of several nodes, the one with the most memory: a revision is refused only when it fits on no node
    it can land on. A node without the label could be any size, so then nothing is refused.
    """
    given = backend.spec.resources.gpu_memory
    if given is not None:
        return GpuOffer(int(parse_quantity(given)), "resources.gpuMemory"), ""  # type: ignore[no-untyped-call]
    if gpu_nodes is None:
        return None, "the GPU nodes were not read"
    if gpu_nodes.problem:
        return None, gpu_nodes.problem
    if not gpu_nodes.nodes:
        return None, "no node with nvidia.com/gpu matches template.nodeSelector; set resources.gpuMemory"
    unlabelled = [node.name for node in gpu_nodes.nodes if node.memory_mib is None]
    if unlabelled:
        return None, (
            f"node {unlabelled[0]} has no nvidia.com/gpu.memory label (NVIDIA GPU feature discovery sets it); "
            "set resources.gpuMemory"
        )
    largest = max(gpu_nodes.nodes, key=lambda node: node.memory_mib or 0)
    assert largest.memory_mib is not None
    return GpuOffer(largest.memory_mib * MIB, largest.product or f"node {largest.name}"), ""


def _gib(amount: int) -> float:
    return round(amount / GIB, 2)


__all__ = ["NO_ARCHITECTURE", "gpu_memory_status", "max_num_seqs_of", "needs_gpu_nodes"]
