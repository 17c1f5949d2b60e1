"""What a client of a simulated Ollama sees, behaviour by behaviour."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from testground.engines import EngineConfig, ollama_tag

PULLED = EngineConfig("ollama", ("llama3:8b", "chat"))
EMPTY = EngineConfig("ollama", ())
HELLO = {"model": "chat", "messages": [{"role": "user", "content": "Say hello"}]}


def url(sim: Any, path: str) -> str:
    return f"http://{sim.host}:{sim.port}{path}"


@pytest.mark.parametrize(
    ("name", "tagged"),
    [
        ("llama3", "llama3:latest"),
        ("llama3:8b", "llama3:8b"),
        ("library/llama3", "llama3:latest"),
        ("registry.ollama.ai/library/llama3:8b", "llama3:8b"),
        ("team/m", "team/m:latest"),
        ("host:5000/team/m", "host:5000/team/m:latest"),
        ("host:5000/team/m:q4", "host:5000/team/m:q4"),
    ],
)
def test_names_always_carry_a_tag(name: str, tagged: str) -> None:
    assert ollama_tag(name) == tagged


def test_starts_with_the_pulled_model_and_its_alias_tagged(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(PULLED) as sim, httpx.AsyncClient() as client:
            root = await client.get(url(sim, "/"))
            assert (root.status_code, root.text) == (200, "Ollama is running")
            assert "version" in (await client.get(url(sim, "/api/version"))).json()
            tags = (await client.get(url(sim, "/api/tags"))).json()["models"]
            # Most recently modified first: the alias was made after the pull.
            assert [(t["name"], t["model"]) for t in tags] == [
                ("chat:latest", "chat:latest"),
                ("llama3:8b", "llama3:8b"),
            ]
            assert {"digest", "size", "modified_at", "details"} <= set(tags[0])
            ids = [m["id"] for m in (await client.get(url(sim, "/v1/models"))).json()["data"]]
            assert ids == ["chat:latest", "llama3:8b"]

    asyncio.run(scenario())


def test_root_answers_before_any_pull_and_pull_streams_ndjson(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(EMPTY) as sim, httpx.AsyncClient() as client:
            assert (await client.get(url(sim, "/"))).status_code == 200
            assert (await client.get(url(sim, "/api/tags"))).json() == {"models": []}
            async with client.stream("POST", url(sim, "/api/pull"), json={"model": "llama3"}) as reply:
                assert reply.headers["content-type"].startswith("application/x-ndjson")
                lines = [json.loads(line) async for line in reply.aiter_lines() if line]
            assert lines[0] == {"status": "pulling manifest"}
            assert any("digest" in line and "total" in line and "completed" in line for line in lines)
            assert lines[-1] == {"status": "success"}
            names = [t["name"] for t in (await client.get(url(sim, "/api/tags"))).json()["models"]]
            assert names == ["llama3:latest"]
            copied = await client.post(url(sim, "/api/copy"), json={"source": "llama3", "destination": "chat"})
            assert copied.status_code == 200
            names = [t["name"] for t in (await client.get(url(sim, "/api/tags"))).json()["models"]]
            assert names == ["chat:latest", "llama3:latest"]
            missing = await client.post(url(sim, "/api/copy"), json={"source": "nope", "destination": "x"})
            assert missing.status_code == 404

    asyncio.run(scenario())


def test_pull_without_streaming_answers_once(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(EMPTY) as sim, httpx.AsyncClient() as client:
            reply = await client.post(url(sim, "/api/pull"), json={"model": "qwen2:0.5b", "stream": False})
            assert (reply.status_code, reply.json()) == (200, {"status": "success"})

    asyncio.run(scenario())


def test_chat_resolves_an_untagged_name_and_streams(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(PULLED) as sim, httpx.AsyncClient() as client:
            reply = await client.post(url(sim, "/v1/chat/completions"), json=HELLO)
            assert reply.status_code == 200
            assert reply.json()["model"] == "chat"
            assert reply.json()["choices"][0]["message"]["content"]
            async with client.stream(
                "POST", url(sim, "/v1/chat/completions"), json={**HELLO, "stream": True}
            ) as streamed:
                lines = [line async for line in streamed.aiter_lines() if line]
            assert lines[-1] == "data: [DONE]"
            assert json.loads(lines[0].removeprefix("data: "))["object"] == "chat.completion.chunk"
            unknown = await client.post(url(sim, "/v1/chat/completions"), json={**HELLO, "model": "mistral"})
            assert unknown.status_code == 404
            assert unknown.json()["error"]["message"] == "model 'mistral' not found"

    asyncio.run(scenario())


def test_never_serves_model_has_no_tags_and_pull_fails(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(PULLED, "never-serves-model") as sim, httpx.AsyncClient() as client:
            assert (await client.get(url(sim, "/"))).status_code == 200
            assert (await client.get(url(sim, "/api/version"))).status_code == 200
            assert (await client.get(url(sim, "/api/tags"))).json() == {"models": []}
            pulled = await client.post(url(sim, "/api/pull"), json={"model": "chat"})
            last = json.loads(pulled.text.splitlines()[-1])
            assert "error" in last
            assert (await client.post(url(sim, "/v1/chat/completions"), json=HELLO)).status_code == 404

    asyncio.run(scenario())


def test_wrong_model_lists_another_name(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(PULLED, "wrong-model") as sim, httpx.AsyncClient() as client:
            names = [t["name"] for t in (await client.get(url(sim, "/api/tags"))).json()["models"]]
            assert names == ["other-model:latest"]

    asyncio.run(scenario())


def test_fail_after_zero_is_503_even_at_the_root(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(PULLED, "fail-after:0") as sim, httpx.AsyncClient() as client:
            for path in ("/", "/api/version", "/api/tags", "/v1/models"):
                assert (await client.get(url(sim, path))).status_code == 503, path

    asyncio.run(scenario())
