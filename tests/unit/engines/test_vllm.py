"""vLLM's profile: the parallelism it derives from the spec, and the runner of the model's task."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.api.invalid_specs import vllm
from turnout.api.backend import Backend, InvalidSpec
from turnout.engines.vllm import VLLM, vllm_args


def parse(spec: dict[str, Any]) -> Backend:
    return Backend.parse("chat", "ml", spec)


def test_tensor_parallel_defaults_to_every_gpu_of_the_replica() -> None:
    assert VLLM.tensor_parallel_size(parse(vllm(resources={"gpus": 4}))) == 4
    assert VLLM.tensor_parallel_size(parse(vllm(resources={"gpus": 4}, vllm={"tensorParallelSize": 2}))) == 2


def test_an_embedding_model_runs_the_pooling_runner_and_a_chat_model_vllms_choice() -> None:
    embedding = parse(vllm(model={"name": "BAAI/bge-base-en-v1.5", "task": "embedding"}))
    chat = parse(vllm())
    assert vllm_args(embedding)[-2:] == ["--runner=pooling", "--convert=embed"]
    assert not any(word.startswith(("--runner", "--convert")) for word in vllm_args(chat))
    # The task changes the pods, so it is a new revision; chat, the default, keeps the revisions it had.
    assert embedding.revision != parse(vllm(model={"name": "BAAI/bge-base-en-v1.5"})).revision
    assert parse(vllm(model={"name": "m", "task": "chat"})).revision == parse(vllm(model={"name": "m"})).revision


def test_the_runner_is_set_by_the_task_not_in_extra_args() -> None:
    with pytest.raises(InvalidSpec, match=r"turnout owns vLLM's --runner: set model.task instead"):
        parse(vllm(vllm={"extraArgs": ["--runner=pooling"]}))
    with pytest.raises(InvalidSpec, match=r"vLLM reads --conv as --convert, which turnout owns"):
        parse(vllm(vllm={"extraArgs": ["--conv=embed"]}))
