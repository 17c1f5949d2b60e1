"""vLLM's profile: the parallelism it derives from the spec."""

from __future__ import annotations

from typing import Any

from tests.unit.api.invalid_specs import vllm
from turnout.api.backend import Backend
from turnout.engines.vllm import VLLM


def parse(spec: dict[str, Any]) -> Backend:
    return Backend.parse("chat", "ml", spec)


def test_tensor_parallel_defaults_to_every_gpu_of_the_replica() -> None:
    assert VLLM.tensor_parallel_size(parse(vllm(resources={"gpus": 4}))) == 4
    assert VLLM.tensor_parallel_size(parse(vllm(resources={"gpus": 4}, vllm={"tensorParallelSize": 2}))) == 2
