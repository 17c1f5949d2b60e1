"""What a client of a simulated vLLM sees, behaviour by behaviour."""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from testground.engines import EngineConfig

CHAT = EngineConfig("vllm", ("chat",), root="/data/models/llama")
KEYED = EngineConfig("vllm", ("chat",), api_key="s3cret")
HELLO = {"model": "chat", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 3}


def url(sim: Any, path: str) -> str:
    return f"http://{sim.host}:{sim.port}{path}"


def test_healthy_lists_its_served_name_and_answers(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            assert (await client.get(url(sim, "/health"))).status_code == 200
            models = (await client.get(url(sim, "/v1/models"))).json()
            assert models["object"] == "list"
            assert [(m["id"], m["object"], m["owned_by"], m["root"]) for m in models["data"]] == [
                ("chat", "model", "vllm", "/data/models/llama")
            ]
            reply = await client.post(url(sim, "/v1/chat/completions"), json=HELLO)
            assert reply.status_code == 200
            body = reply.json()
            assert body["object"] == "chat.completion"
            assert body["model"] == "chat"
            assert body["choices"][0]["message"]["role"] == "assistant"
            assert len(body["choices"][0]["message"]["content"].split()) == 3
            assert body["choices"][0]["finish_reason"] == "length"
            assert body["usage"] == {
                "prompt_tokens": 2,
                "completion_tokens": 3,
                "total_tokens": 5,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            }

    asyncio.run(scenario())


def test_streaming_is_sse_chunks_ending_with_done(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            request = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}
            async with client.stream("POST", url(sim, "/v1/chat/completions"), json=request) as reply:
                assert reply.headers["content-type"].startswith("text/event-stream")
                lines = [line async for line in reply.aiter_lines() if line]
        assert all(line.startswith("data: ") for line in lines)
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        assert len(text.split()) == 3
        # As vLLM: the last token's chunk says why it finished; the usage chunk carries the fingerprint.
        assert chunks[-2]["choices"][0]["finish_reason"] == "length"
        assert chunks[-2]["choices"][0]["delta"]["content"]
        assert chunks[-1]["choices"] == []
        assert chunks[-1]["usage"]["completion_tokens"] == 3
        assert [c.get("system_fingerprint") is not None for c in chunks] == [False] * (len(chunks) - 1) + [True]

    asyncio.run(scenario())


def test_unknown_model_is_404_not_found_like_vllm(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            reply = await client.post(url(sim, "/v1/chat/completions"), json={**HELLO, "model": "gpt-4"})
        assert reply.status_code == 404
        assert reply.json()["error"] == {
            "message": "The model `gpt-4` does not exist. Valid aliases: chat.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }

    asyncio.run(scenario())


def test_refused_bodies_are_vllms_validation_errors_naming_their_place(running: Callable[..., Any]) -> None:
    async def scenario() -> list[httpx.Response]:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            chat = url(sim, "/v1/chat/completions")
            sent = ('{"model": "chat", "messages": [', "[1, 2]", '{"model": "chat"}', '{"messages": "hi"}')
            as_json = {"Content-Type": "application/json"}
            return [await client.post(chat, content=body, headers=as_json) for body in sent]

    replies = asyncio.run(scenario())
    assert {(reply.status_code, reply.headers["content-type"]) for reply in replies} == {(400, "application/json")}
    errors = [reply.json()["error"] for reply in replies]
    assert [(e["type"], e["param"], e["code"]) for e in errors] == [
        ("Bad Request", "body.31", 400),
        ("Bad Request", "body", 400),
        ("Bad Request", "body.messages", 400),
        ("Bad Request", "body.messages", 400),
    ]
    assert errors[0]["message"].startswith("1 validation error:\n  {'type': 'json_invalid', 'loc': 'body.31'")


def test_no_such_route_is_fastapis_404_counted_under_none(running: Callable[..., Any]) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, str]:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            unknown = await client.get(url(sim, "/v1/no-such-path"))
            embeddings = await client.post(url(sim, "/v1/embeddings"), json={"model": "chat", "input": "hi"})
            return unknown, embeddings, (await client.get(url(sim, "/metrics"))).text

    unknown, embeddings, metrics = asyncio.run(scenario())
    for reply in (unknown, embeddings):
        assert (reply.status_code, reply.headers["content-type"], reply.json()) == (
            404,
            "application/json",
            {"detail": "Not Found"},
        )
    assert 'http_requests_total{handler="none",method="GET",status="4xx"} 1.0' in metrics
    assert 'http_requests_total{handler="none",method="POST",status="4xx"} 1.0' in metrics


def test_api_key_guards_v1_but_not_health_or_metrics(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(KEYED) as sim, httpx.AsyncClient() as client:
            bare = await client.get(url(sim, "/v1/models"))
            wrong = await client.get(url(sim, "/v1/models"), headers={"Authorization": "Bearer nope"})
            chat = await client.post(url(sim, "/v1/chat/completions"), json=HELLO)
            good = await client.get(url(sim, "/v1/models"), headers={"Authorization": "Bearer s3cret"})
            health = await client.get(url(sim, "/health"))
            metrics = await client.get(url(sim, "/metrics"))
        assert (bare.status_code, bare.json()) == (401, {"error": "Unauthorized"})
        assert wrong.status_code == 401
        assert chat.status_code == 401
        assert good.status_code == 200
        assert good.json()["data"][0]["id"] == "chat"
        assert health.status_code == 200
        assert metrics.status_code == 200

    asyncio.run(scenario())


def test_metrics_are_prometheus_text_with_vllm_series(running: Callable[..., Any]) -> None:
    async def scenario() -> str:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            await client.post(url(sim, "/v1/chat/completions"), json=HELLO)
            reply = await client.get(url(sim, "/metrics"))
            assert reply.headers["content-type"].startswith("text/plain")
            return reply.text

    text = asyncio.run(scenario())
    assert "# TYPE vllm:num_requests_running gauge" in text
    # max_tokens 3 cut the reply: it finished for its length.
    assert 'vllm:request_success_total{engine="0",finished_reason="length",model_name="chat"} 1.0' in text
    assert 'vllm:generation_tokens_total{engine="0",model_name="chat"} 3.0' in text


def test_never_serves_model_is_up_but_lists_nothing(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT, "never-serves-model") as sim, httpx.AsyncClient() as client:
            assert (await client.get(url(sim, "/health"))).status_code == 200
            assert (await client.get(url(sim, "/v1/models"))).json()["data"] == []
            assert (await client.post(url(sim, "/v1/chat/completions"), json=HELLO)).status_code == 404

    asyncio.run(scenario())


def test_wrong_model_serves_another_name(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT, "wrong-model") as sim, httpx.AsyncClient() as client:
            ids = [m["id"] for m in (await client.get(url(sim, "/v1/models"))).json()["data"]]
            assert ids == ["other-model"]
            assert (await client.post(url(sim, "/v1/chat/completions"), json=HELLO)).status_code == 404
            other = await client.post(url(sim, "/v1/chat/completions"), json={**HELLO, "model": "other-model"})
            assert other.status_code == 200

    asyncio.run(scenario())


def test_fail_after_zero_is_503_everywhere(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(KEYED, "fail-after:0") as sim, httpx.AsyncClient() as client:
            for path in ("/health", "/metrics", "/v1/models"):
                assert (await client.get(url(sim, path))).status_code == 503, path
            assert (await client.post(url(sim, "/v1/chat/completions"), json=HELLO)).status_code == 503

    asyncio.run(scenario())


def test_fail_after_serves_then_fails(running: Callable[..., Any], eventually: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT, "fail-after:0.3") as sim, httpx.AsyncClient() as client:
            assert (await client.get(url(sim, "/health"))).status_code == 200

            async def dead() -> bool:
                return (await client.get(url(sim, "/health"))).status_code == 503

            await eventually(dead, 5, "/health to answer 503")

    asyncio.run(scenario())
