"""Contract with vLLM: the GPU memory estimator's per-GPU figures are what vLLM itself logs.

vLLM (the CPU build) is started on a tiny random-weight Llama (vllm_memory_log.py); its own log lines
say what the weights are ("Checkpoint size: X GiB") and how many tokens its KV cache holds in the
space it was given ("CPU KV cache size: N tokens"). The estimator must agree within 5%, as it must
with the published GPU figures of tests/unit/engines/test_gpu_memory.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.preparation import run_in_vllm
from turnout.engines.gpu_memory import GIB, Architecture, kv_bytes_per_token, weights_bytes

pytestmark = pytest.mark.engine

SCRIPT = Path(__file__).with_name("vllm_memory_log.py")
SHAPE = {
    "hidden_size": 1024,
    "intermediate_size": 2816,
    "num_hidden_layers": 8,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "head_dim": 64,
    "vocab_size": 32000,
}
KV_CACHE_SPACE_GIB = 1
BF16 = 2


@pytest.fixture(scope="module")
def started() -> tuple[str, dict[str, Any]]:
    """vLLM's log of its start on the tiny model, and what the script says about the model."""
    out = run_in_vllm(SCRIPT, {"shape": SHAPE, "max_model_len": 2048, "kv_cache_space_gib": KV_CACHE_SPACE_GIB})
    return out, json.loads(out.strip().splitlines()[-1])


def architecture(parameters: int) -> Architecture:
    """What a user copies from the tiny model's config.json into model.architecture."""
    return Architecture(
        parameters=parameters,
        layers=SHAPE["num_hidden_layers"],
        kv_heads=SHAPE["num_key_value_heads"],
        head_dim=SHAPE["head_dim"],
    )


def logged(log: str, pattern: str) -> str:
    found = re.search(pattern, log)
    assert found, f"vLLM did not log {pattern!r}:\n{log[-3000:]}"
    return found.group(1)


def test_weights_are_what_vllm_says_the_checkpoint_takes(started: tuple[str, dict[str, Any]]) -> None:
    log, model = started
    checkpoint_gib = float(logged(log, r"Checkpoint size: ([\d.]+) GiB"))
    estimated = weights_bytes(architecture(model["parameters"]), BF16, 1) / GIB
    assert estimated == pytest.approx(checkpoint_gib, rel=0.05)


def test_kv_cache_per_token_is_what_vllm_fits_in_the_space_it_was_given(started: tuple[str, dict[str, Any]]) -> None:
    log, model = started
    tokens = int(logged(log, r"KV cache size: ([\d,]+) tokens").replace(",", ""))
    per_token = KV_CACHE_SPACE_GIB * GIB / tokens
    assert kv_bytes_per_token(architecture(model["parameters"]), BF16, 1) == pytest.approx(per_token, rel=0.05)
