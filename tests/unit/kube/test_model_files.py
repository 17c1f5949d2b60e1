"""Reading a model's files from its inspector pod: what is not there is an answer, what does not answer
is not, and nothing larger than a config file is read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx

from turnout.engines.model_files import MAX_CONFIG_BYTES, ModelDirectory
from turnout.kube.model_files import read_model_files
from turnout.rollout.observed import ModelFilesRead

COMMIT = "0e9e39f249a16976918f6564b8830bc894c89659"
HUB = ModelDirectory("/data/models/huggingface/hub/models--meta-llama--Llama-3.1-8B-Instruct", hub=True)
LOCAL = ModelDirectory("/data/models/llama", hub=False)
CONFIG = json.dumps(
    {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_size": 4096}
).encode()
INDEX = json.dumps({"metadata": {"total_size": 16_060_522_496}}).encode()


def serving(files: dict[str, bytes]) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        body = files.get(request.url.path.lstrip("/"))
        if body is None:
            return httpx.Response(404)
        if request.method == "HEAD":
            return httpx.Response(200, headers={"Content-Length": str(len(body))})
        return httpx.Response(200, content=body)

    return answer


def read(directory: ModelDirectory, handler: Callable[[httpx.Request], httpx.Response]) -> ModelFilesRead:
    async def go() -> ModelFilesRead:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await read_model_files("10.244.0.9", 8080, directory, "models", client=client)

    return asyncio.run(go())


def test_a_hub_model_is_read_from_the_snapshot_refs_main_names() -> None:
    snapshot = f"snapshots/{COMMIT}/"
    files = {
        "refs/main": COMMIT.encode(),
        snapshot + "config.json": CONFIG,
        snapshot + "model.safetensors.index.json": INDEX,
    }
    found = read(HUB, serving(files))
    assert found.facts is not None
    assert found.facts.parameters == 8_030_261_248
    assert found.source == "config.json on claim models"
    assert found.path == f"{HUB.path}/snapshots/{COMMIT}"


def test_a_single_safetensors_file_gives_the_weights_by_its_size() -> None:
    found = read(LOCAL, serving({"config.json": CONFIG, "model.safetensors": b"x" * 4096}))
    assert found.facts is not None
    assert found.facts.checkpoint_bytes == 4096


def test_a_hub_model_not_downloaded_yet_is_an_answer_not_a_retry() -> None:
    found = read(HUB, serving({}))
    assert found.facts is None
    assert not found.retry
    assert found.problem == f"the model is not downloaded on claim models yet ({HUB.path}/refs/main is missing)"


def test_config_without_weights_says_which_files_are_missing() -> None:
    found = read(LOCAL, serving({"config.json": CONFIG}))
    assert found.problem == (
        "no model.safetensors.index.json or pytorch_model.bin.index.json or model.safetensors beside config.json "
        "in /data/models/llama on claim models"
    )


def test_a_huge_config_is_refused_without_reading_it_all() -> None:
    found = read(LOCAL, serving({"config.json": b" " * (MAX_CONFIG_BYTES + 1), "model.safetensors": b"x"}))
    assert (
        found.problem
        == "/data/models/llama on claim models: config.json is larger than 1024 KiB, more than turnout reads"
    )


def test_invalid_json_is_refused_with_a_clear_message() -> None:
    found = read(LOCAL, serving({"config.json": b"{", "model.safetensors": b"x"}))
    assert found.problem == "/data/models/llama on claim models: config.json is not JSON"


def test_a_server_not_listening_yet_is_asked_again() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    found = read(LOCAL, refuse)
    assert found.retry
    assert found.problem == "the inspector pod did not answer GET config.json (ConnectError)"
