"""How much GPU memory a vLLM revision needs per GPU, and whether the GPUs it can land on offer it.

Pure arithmetic over the model's architecture facts (its `config.json`, declared in
`model.architecture` or read from the model claim) and the vLLM options, checked against the table
of vLLM's own start-up figures in `tests/unit/engines/test_gpu_memory.py`. vLLM's budget per GPU is
`gpuMemoryUtilization` times the GPU's memory; out of it come the weights, the activation peak of its
profiling run, non-torch memory (CUDA context, NCCL buffers), and what is left is the KV cache,
which must hold at least one sequence of `maxModelLen` tokens or vLLM refuses to start.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
MIB = 1024**2

ACTIVATION_ALLOWANCE_BYTES = int(1.5 * GIB)
"""The activation peak of vLLM's profiling run (a forward pass of `max_num_batched_tokens` and the
sampler's warm-up over `max_num_seqs`). vLLM logged 1.26 GiB for Llama-3-8B
(vllm-project/vllm#10511) and 1.42 GiB for Qwen2.5-7B (vllm-project/vllm#13882) at their defaults.
More when the sampler's warm-up alone takes more: see `sampler_warmup_bytes`."""

SAMPLER_BYTES_PER_LOGIT = 22
"""What vLLM 0.32's sampler warm-up (`_dummy_sampler_run` in its GPU model runner's profile run) holds
per logit of its `max_num_seqs` x vocabulary batch, at its peak: the logits in the model's dtype (2),
their float32 copy (4), and top-k/top-p's sort of them (float32 values 4, int64 indices 8, float32
softmax 4). A floor: what the allocator keeps around it is not counted."""

DEFAULT_MAX_NUM_SEQS = 256
"""vLLM 0.32's `max_num_seqs` for its OpenAI server on a GPU of less than 70 GiB, or an A100
(`EngineArgs.get_batch_defaults`, vllm/engine/arg_utils.py)."""

LARGE_GPU_MAX_NUM_SEQS = 1024
"""vLLM 0.32's `max_num_seqs` for its OpenAI server on a GPU of 70 GiB or more other than an A100
(an H100, H200), and on any GPU of 160 GiB or more (B200)."""

DEFAULT_VOCAB_SIZE = 32000
"""The vocabulary assumed when `model.architecture.vocabSize` is not given: the smallest of common
models (Llama 2, Mistral 7B), so that an unknown vocabulary never makes the estimate refuse more."""

RUNTIME_ALLOWANCE_BYTES = int(0.5 * GIB)
"""Memory outside PyTorch's allocator: CUDA context, cuBLAS workspaces, NCCL buffers. vLLM logged
0.03 to 0.43 GiB per GPU (vllm-project/vllm#13882, #16570, #14447), and 1.79 GiB on an H100 in
#10511. The allowances are a floor, not a ceiling: turnout refuses only what cannot fit even so; a
spec that passes can still come up short at start, and vLLM's own message then says by how much."""

ALLOWANCE_BYTES = ACTIVATION_ALLOWANCE_BYTES + RUNTIME_ALLOWANCE_BYTES

TIMES = "\u00d7"
"""The multiplication sign of the message (the source spells it escaped so linters read it as meant)."""

MAX_MODEL_LEN_STEP = 1024
"""A suggested `maxModelLen` is rounded down to a multiple of this many tokens."""

MIN_SUGGESTED_MAX_MODEL_LEN = 1024
"""Below this, shortening the context is no suggestion worth making: the weights do not fit."""

TENSOR_PARALLEL_CHOICES = (2, 4, 8, 16, 32, 64)
"""Tensor parallel sizes worth suggesting: attention heads divide by powers of two in every common model."""

# vLLM options that change what the weights or the KV cache take per GPU in ways the facts here do
# not describe (quantized weights, an 8-bit KV cache, offloading, pipeline stages): no verdict then.
UNCERTAIN_FLAGS = (
    "--quantization",
    "-q",
    "--kv-cache-dtype",
    "--cpu-offload-gb",
    "--kv-cache-memory-bytes",
    "--pipeline-parallel-size",
    "-pp",
    "--kv-offloading-size",
)


@dataclass(frozen=True)
class Architecture:
    """What the model's config.json says about its size."""

    parameters: int
    layers: int
    kv_heads: int
    head_dim: int
    vocab_size: int | None = None
    """`vocab_size`: the width of the logits the sampler's warm-up holds; None when unknown."""
    weights_bytes: int | None = None
    """The checkpoint's bytes, for a quantized checkpoint that vLLM holds as stored (whatever the dtype);
    None: the weights are `parameters` times the dtype's bytes."""


@dataclass(frozen=True)
class Layout:
    """How vLLM is told to run the model."""

    dtype_bytes: int
    tensor_parallel_size: int
    max_model_len: int
    gpu_memory_utilization: float
    gpus: int
    """GPUs per replica (`resources.gpus`): a suggested tensor parallel size above it needs more."""
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS
    """vLLM's `--max-num-seqs`: the sequences its sampler warms up at once (see `default_max_num_seqs`)."""
    samples: bool = True
    """The model generates (vLLM runs the sampler); False for a pooling (embedding) model."""


@dataclass(frozen=True)
class GpuOffer:
    """The memory of one GPU where the pods can land, and what to call it in a message."""

    memory_bytes: int
    name: str
    """E.g. `NVIDIA-L4` (the node's `nvidia.com/gpu.product`), or `resources.gpuMemory`."""


@dataclass(frozen=True)
class Estimate:
    """The verdict: what one GPU needs, what it offers, and what would fit instead. Bytes per GPU."""

    weights_bytes: int
    kv_cache_bytes: int
    """KV cache of one sequence of `maxModelLen` tokens."""
    allowance_bytes: int
    available_bytes: int | None
    """`gpuMemoryUtilization` times the GPU's memory; None when unknown."""
    fits: bool | None
    """None when it cannot be said (GPU memory unknown)."""
    message: str
    max_model_len_that_fits: int | None = None
    tensor_parallel_size_that_fits: int | None = None

    @property
    def needed_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.allowance_bytes


def weights_bytes(architecture: Architecture, dtype_bytes: int, tensor_parallel_size: int) -> int:
    """Bytes of weights on each GPU: vLLM shards every linear layer and the embeddings over tensor parallel."""
    if architecture.weights_bytes is not None:
        return architecture.weights_bytes // tensor_parallel_size
    return architecture.parameters * dtype_bytes // tensor_parallel_size


def kv_bytes_per_token(architecture: Architecture, dtype_bytes: int, tensor_parallel_size: int) -> int:
    """Bytes of KV cache per token on each GPU: a key and a value per layer and KV head on this GPU.

    KV heads are split over tensor parallel; with fewer KV heads than GPUs vLLM replicates them, so
    each GPU keeps at least one.
    """
    heads = max(1, architecture.kv_heads // tensor_parallel_size)
    return 2 * architecture.layers * heads * architecture.head_dim * dtype_bytes


def default_max_num_seqs(gpu: GpuOffer | None) -> int:
    """vLLM 0.32's own `max_num_seqs` for its OpenAI server on `gpu` (without `--performance-mode
    throughput`, which doubles it): by the GPU's memory and name, as `EngineArgs.get_batch_defaults`
    decides. An unknown GPU gets the smaller default."""
    if gpu is None:
        return DEFAULT_MAX_NUM_SEQS
    if gpu.memory_bytes >= 160 * GIB or (gpu.memory_bytes >= 70 * GIB and "a100" not in gpu.name.lower()):
        return LARGE_GPU_MAX_NUM_SEQS
    return DEFAULT_MAX_NUM_SEQS


def sampler_warmup_bytes(architecture: Architecture, layout: Layout) -> int:
    """Bytes the sampler's warm-up holds on each GPU: `max_num_seqs` rows of logits over the whole
    vocabulary (gathered on every GPU under tensor parallel); none for a pooling model."""
    if not layout.samples:
        return 0
    vocabulary = architecture.vocab_size or DEFAULT_VOCAB_SIZE
    return layout.max_num_seqs * vocabulary * SAMPLER_BYTES_PER_LOGIT


def allowance_bytes(architecture: Architecture, layout: Layout) -> int:
    """Activations and runtime per GPU: the profiling run's peak is the larger of its forward pass (the
    fixed allowance, which holds the sampler at vLLM's defaults) and the sampler's warm-up, plus the
    runtime's memory."""
    return max(ACTIVATION_ALLOWANCE_BYTES, sampler_warmup_bytes(architecture, layout)) + RUNTIME_ALLOWANCE_BYTES


def estimate(architecture: Architecture, layout: Layout, gpu: GpuOffer | None, unknown: str = "") -> Estimate:
    """Whether `architecture` run as `layout` fits on `gpu`; `unknown` says why `gpu` is None."""
    tp = layout.tensor_parallel_size
    weights = weights_bytes(architecture, layout.dtype_bytes, tp)
    per_token = kv_bytes_per_token(architecture, layout.dtype_bytes, tp)
    kv_cache = per_token * layout.max_model_len
    allowance = allowance_bytes(architecture, layout)
    needs = (
        f"needs {_gib(weights)} GiB weights + {_gib(kv_cache)} GiB KV cache (maxModelLen {layout.max_model_len}) "
        f"+ {_gib(allowance)} GiB activations and runtime{_sampled(architecture, layout)} per GPU"
    )
    if gpu is None:
        return Estimate(
            weights, kv_cache, allowance, None, None, f"{needs}; GPU memory unknown ({unknown}): not checked"
        )
    available = int(gpu.memory_bytes * layout.gpu_memory_utilization)
    utilization = f"{layout.gpu_memory_utilization:.2f}"
    offers = f"{gpu.name} offers {_gib(gpu.memory_bytes)} GiB {TIMES} {utilization} = {_gib(available)} GiB"
    fits = weights + kv_cache + allowance <= available
    if fits:
        return Estimate(weights, kv_cache, allowance, available, True, f"{needs}; {offers}: fits")
    longest = _longest_that_fits(available - weights - allowance, per_token, layout.max_model_len)
    wider = _tensor_parallel_that_fits(architecture, layout, available)
    remedies = []
    if longest is not None:
        remedies.append(f"maxModelLen ≤ {longest}")
    if wider is not None:
        more_gpus = f" (with resources.gpus {wider})" if layout.gpus % wider else ""
        remedies.append(f"tensorParallelSize {wider}{more_gpus}")
    remedy = "use " + " or ".join(remedies) if remedies else "use GPUs with more memory, or a smaller model"
    return Estimate(
        weights,
        kv_cache,
        allowance,
        available,
        False,
        f"{needs}; {offers}: {remedy}",
        max_model_len_that_fits=longest,
        tensor_parallel_size_that_fits=wider,
    )


def _longest_that_fits(kv_budget: int, per_token: int, wanted: int) -> int | None:
    """The longest `maxModelLen` under `wanted`, a multiple of MAX_MODEL_LEN_STEP, whose KV cache fits."""
    if kv_budget <= 0:
        return None
    longest = min(kv_budget // per_token, wanted - 1) // MAX_MODEL_LEN_STEP * MAX_MODEL_LEN_STEP
    return longest if longest >= MIN_SUGGESTED_MAX_MODEL_LEN else None


def _tensor_parallel_that_fits(architecture: Architecture, layout: Layout, available: int) -> int | None:
    """The smallest tensor parallel size above the layout's with which the full `maxModelLen` fits."""
    for size in TENSOR_PARALLEL_CHOICES:
        if size <= layout.tensor_parallel_size:
            continue
        needed = (
            weights_bytes(architecture, layout.dtype_bytes, size)
            + kv_bytes_per_token(architecture, layout.dtype_bytes, size) * layout.max_model_len
            + allowance_bytes(architecture, layout)
        )
        if needed <= available:
            return size
    return None


def _sampled(architecture: Architecture, layout: Layout) -> str:
    """What the allowance assumed of the sampler, in the message: ` (maxNumSeqs 256)`."""
    if not layout.samples:
        return ""
    vocabulary = "" if architecture.vocab_size else f", vocabSize {DEFAULT_VOCAB_SIZE} assumed"
    return f" (maxNumSeqs {layout.max_num_seqs}{vocabulary})"


def _gib(amount: int) -> str:
    return f"{amount / GIB:.1f}"


__all__ = [
    "ACTIVATION_ALLOWANCE_BYTES",
    "ALLOWANCE_BYTES",
    "DEFAULT_MAX_NUM_SEQS",
    "DEFAULT_VOCAB_SIZE",
    "GIB",
    "LARGE_GPU_MAX_NUM_SEQS",
    "MIB",
    "RUNTIME_ALLOWANCE_BYTES",
    "SAMPLER_BYTES_PER_LOGIT",
    "UNCERTAIN_FLAGS",
    "Architecture",
    "Estimate",
    "GpuOffer",
    "Layout",
    "allowance_bytes",
    "default_max_num_seqs",
    "estimate",
    "kv_bytes_per_token",
    "sampler_warmup_bytes",
    "weights_bytes",
]
