"""The GPU memory estimator against vLLM's own start-up figures, and its verdicts.

vLLM logs at start what the weights took on each GPU ("Loading model weights took X GB", where its
"GB" is GiB: it divides by 2**30; V1 says "Model loading took X GiB") and what the KV cache got
("kv_cache_size=Y GiB" and "# GPU blocks: N" of 16 tokens each in V0; "Available KV cache memory"
and "GPU KV cache size: N tokens" in V1). Each row names the public log it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from turnout.engines.gpu_memory import (
    ALLOWANCE_BYTES,
    DEFAULT_MAX_NUM_SEQS,
    GIB,
    LARGE_GPU_MAX_NUM_SEQS,
    MIB,
    Architecture,
    GpuOffer,
    Layout,
    allowance_bytes,
    default_max_num_seqs,
    estimate,
    kv_bytes_per_token,
    weights_bytes,
)

# config.json of meta-llama/Llama-3.1-8B-Instruct (and Meta-Llama-3-8B, the same shapes):
# num_hidden_layers 32, num_key_value_heads 8, hidden_size 4096 / num_attention_heads 32 = head_dim 128;
# 8,030,261,248 parameters (the model card's "8.03B").
LLAMA_3_8B = Architecture(parameters=8_030_261_248, layers=32, kv_heads=8, head_dim=128)
# Qwen/Qwen2.5-VL-72B-Instruct: 73.4B parameters (model card), the language model's config
# num_hidden_layers 80, num_key_value_heads 8, hidden_size 8192 / 64 heads = head_dim 128.
QWEN2_5_VL_72B = Architecture(parameters=73_400_000_000, layers=80, kv_heads=8, head_dim=128)
BF16 = 2


@dataclass(frozen=True)
class Published:
    model: str
    architecture: Architecture
    tensor_parallel_size: int
    weights_gib: float
    """What vLLM logged the weights took on one GPU."""
    source: str


WEIGHTS = [
    # "Loading model weights took 14.9888 GB", RTX 3090, Llama-3.1-8B-Instruct, bf16.
    Published("Llama-3.1-8B-Instruct", LLAMA_3_8B, 1, 14.9888, "https://github.com/vllm-project/vllm/issues/10517"),
    # "model weights take 14.96GiB" (vllm serve meta-llama/Meta-Llama-3-8B), H100.
    Published("Meta-Llama-3-8B", LLAMA_3_8B, 1, 14.96, "https://github.com/vllm-project/vllm/pull/10511"),
    # "model weights take 7.48GiB" (the same, -tp 2): per GPU.
    Published("Meta-Llama-3-8B", LLAMA_3_8B, 2, 7.48, "https://github.com/vllm-project/vllm/pull/10511"),
    # "model weights take 34.43GiB" on each of 4 A100-40GB (tensor parallel 4), Qwen2.5-VL-72B-Instruct.
    Published("Qwen2.5-VL-72B-Instruct", QWEN2_5_VL_72B, 4, 34.43, "https://github.com/vllm-project/vllm/issues/16570"),
]


@dataclass(frozen=True)
class PublishedKv:
    model: str
    architecture: Architecture
    tensor_parallel_size: int
    kv_cache_gib: float
    gpu_blocks: int
    """Blocks of 16 tokens (vLLM's default block size)."""
    source: str

    @property
    def bytes_per_token(self) -> float:
        return self.kv_cache_gib * GIB / (self.gpu_blocks * 16)


KV_CACHE = [
    # "kv_cache_size=3.81GiB", "# GPU blocks: 1952" (max-model-len 20000), RTX 3090, Llama-3.1-8B-Instruct.
    PublishedKv(
        "Llama-3.1-8B-Instruct", LLAMA_3_8B, 1, 3.81, 1952, "https://github.com/vllm-project/vllm/issues/10517"
    ),
    # "kv_cache_size=2.89GiB", "# GPU blocks: 1478" (max-model-len 29000), the same issue.
    PublishedKv(
        "Llama-3.1-8B-Instruct", LLAMA_3_8B, 1, 2.89, 1478, "https://github.com/vllm-project/vllm/issues/10517"
    ),
]


@pytest.mark.parametrize("row", WEIGHTS, ids=lambda r: f"{r.model}-tp{r.tensor_parallel_size}")
def test_weights_are_within_5_percent_of_what_vllm_logged(row: Published) -> None:
    estimated = weights_bytes(row.architecture, BF16, row.tensor_parallel_size) / GIB
    assert estimated == pytest.approx(row.weights_gib, rel=0.05), row.source


@pytest.mark.parametrize("row", KV_CACHE, ids=lambda r: f"{r.model}-{r.gpu_blocks}blocks")
def test_kv_cache_per_token_is_within_5_percent_of_what_vllm_logged(row: PublishedKv) -> None:
    estimated = kv_bytes_per_token(row.architecture, BF16, row.tensor_parallel_size)
    assert estimated == pytest.approx(row.bytes_per_token, rel=0.05), row.source


# The L4 of the issue: NVIDIA GPU feature discovery labels it nvidia.com/gpu.memory=23034 (MiB).
L4 = GpuOffer(23034 * MIB, "NVIDIA-L4")


def layout(max_model_len: int, tensor_parallel_size: int = 1, gpus: int = 1, utilization: float = 0.9) -> Layout:
    return Layout(
        dtype_bytes=BF16,
        tensor_parallel_size=tensor_parallel_size,
        max_model_len=max_model_len,
        gpu_memory_utilization=utilization,
        gpus=gpus,
    )


def test_llama_8b_at_32k_on_an_l4_is_refused_with_what_would_fit() -> None:
    verdict = estimate(LLAMA_3_8B, layout(32768), L4)
    assert verdict.fits is False
    assert verdict.message == (
        "needs 15.0 GiB weights + 4.0 GiB KV cache (maxModelLen 32768) + 2.0 GiB activations and runtime "
        "(maxNumSeqs 256, vocabSize 32000 assumed) per GPU; NVIDIA-L4 offers 22.5 GiB \u00d7 0.90 = 20.2 GiB: "
        "use maxModelLen ≤ 26624 or tensorParallelSize 2 (with resources.gpus 2)"
    )
    assert verdict.max_model_len_that_fits == 26624
    assert verdict.tensor_parallel_size_that_fits == 2


def test_what_it_suggests_fits_and_one_step_more_does_not() -> None:
    suggested = estimate(LLAMA_3_8B, layout(32768), L4).max_model_len_that_fits
    assert suggested is not None
    assert estimate(LLAMA_3_8B, layout(suggested), L4).fits is True
    assert estimate(LLAMA_3_8B, layout(suggested + 1024), L4).fits is False
    assert estimate(LLAMA_3_8B, layout(32768, tensor_parallel_size=2, gpus=2), L4).fits is True


def test_the_default_context_fits_an_l4_and_says_so() -> None:
    verdict = estimate(LLAMA_3_8B, layout(8192), L4)
    assert verdict.fits is True
    assert verdict.message.endswith(": fits")
    assert verdict.needed_bytes == verdict.weights_bytes + verdict.kv_cache_bytes + ALLOWANCE_BYTES


def test_weights_that_cannot_fit_suggest_only_more_gpus() -> None:
    small = GpuOffer(16 * GIB, "resources.gpuMemory")
    verdict = estimate(LLAMA_3_8B, layout(8192, gpus=4), small)
    assert verdict.fits is False
    assert verdict.max_model_len_that_fits is None
    assert verdict.message.endswith("use tensorParallelSize 2")  # 4 GPUs already: 2 divides them


def test_nothing_suggested_when_no_tensor_parallel_size_fits_either() -> None:
    verdict = estimate(QWEN2_5_VL_72B, layout(8192), GpuOffer(2 * GIB, "resources.gpuMemory"))
    assert verdict.fits is False
    assert verdict.message.endswith("use GPUs with more memory, or a smaller model")


def test_unknown_gpu_memory_is_said_and_not_judged() -> None:
    verdict = estimate(LLAMA_3_8B, layout(32768), None, "no node has the label")
    assert verdict.fits is None
    assert verdict.available_bytes is None
    assert "GPU memory unknown (no node has the label): not checked" in verdict.message


def test_fewer_kv_heads_than_gpus_are_replicated() -> None:
    # vLLM keeps at least one KV head per GPU: 8 KV heads over 16 GPUs are not half a head each.
    assert kv_bytes_per_token(LLAMA_3_8B, BF16, 16) == kv_bytes_per_token(LLAMA_3_8B, BF16, 8)


# Llama-3.1-8B's config.json: vocab_size 128256.
LLAMA_3_8B_VOCAB = Architecture(parameters=8_030_261_248, layers=32, kv_heads=8, head_dim=128, vocab_size=128256)


def seqs(max_num_seqs: int, max_model_len: int = 8192, samples: bool = True) -> Layout:
    return Layout(
        dtype_bytes=BF16,
        tensor_parallel_size=1,
        max_model_len=max_model_len,
        gpu_memory_utilization=0.9,
        gpus=1,
        max_num_seqs=max_num_seqs,
        samples=samples,
    )


def test_at_vllms_default_max_num_seqs_the_fixed_allowance_holds_the_sampler() -> None:
    # 256 x 128256 logits x 22 bytes = 0.67 GiB, inside the 1.5 GiB vLLM logged for this model's profiling run.
    assert allowance_bytes(LLAMA_3_8B_VOCAB, seqs(256)) == ALLOWANCE_BYTES
    verdict = estimate(LLAMA_3_8B_VOCAB, seqs(256), L4)
    assert "2.0 GiB activations and runtime (maxNumSeqs 256) per GPU" in verdict.message


def test_many_sequences_over_a_large_vocabulary_count_the_samplers_warm_up() -> None:
    # 2048 x 128256 x 22 bytes = 5.4 GiB of logits at the warm-up: an L4 that fits 256 sequences does not.
    assert estimate(LLAMA_3_8B_VOCAB, seqs(256, 16384), L4).fits is True
    verdict = estimate(LLAMA_3_8B_VOCAB, seqs(2048, 16384), L4)
    assert verdict.fits is False
    assert verdict.allowance_bytes == 2048 * 128256 * 22 + int(0.5 * GIB)
    assert "5.9 GiB activations and runtime (maxNumSeqs 2048) per GPU" in verdict.message


def test_a_pooling_model_runs_no_sampler() -> None:
    verdict = estimate(LLAMA_3_8B_VOCAB, seqs(4096, samples=False), L4)
    assert verdict.allowance_bytes == ALLOWANCE_BYTES
    assert "activations and runtime per GPU" in verdict.message


@pytest.mark.parametrize(
    ("gpu", "expected"),
    [
        (L4, DEFAULT_MAX_NUM_SEQS),
        (GpuOffer(81559 * MIB, "NVIDIA-H100-80GB-HBM3"), LARGE_GPU_MAX_NUM_SEQS),
        (GpuOffer(81920 * MIB, "NVIDIA-A100-SXM4-80GB"), DEFAULT_MAX_NUM_SEQS),
        (GpuOffer(183359 * MIB, "NVIDIA-B200"), LARGE_GPU_MAX_NUM_SEQS),
        (None, DEFAULT_MAX_NUM_SEQS),
    ],
)
def test_vllms_default_max_num_seqs_follows_the_gpu_as_vllm_decides(gpu: GpuOffer | None, expected: int) -> None:
    assert default_max_num_seqs(gpu) == expected
