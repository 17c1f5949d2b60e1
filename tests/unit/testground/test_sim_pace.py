"""A paced simulator: tokens streamed no earlier than the ttft and the pace say, `ignore_eos` as vLLM
reads it, and the chat completions it received counted on `/sim/requests`.

Times are checked from below only: a token must never come early; how late a busy machine lets it
come is the benchmark's to measure (tests/engine/test_benchmark_agreement.py), not a unit test's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from testground.behaviour import Degradation
from testground.engines import EngineConfig
from testground.simulator import Simulator

CHAT = EngineConfig("vllm", ("chat",))
KEYED = EngineConfig("vllm", ("chat",), api_key="s3cret")
OLLAMA = EngineConfig("ollama", ("chat",))
STREAMED = {
    "model": "chat",
    "messages": [{"role": "user", "content": "Say hello"}],
    "max_tokens": 5,
    "stream": True,
    "stream_options": {"include_usage": True},
}


def url(sim: Simulator, path: str) -> str:
    return f"http://{sim.host}:{sim.port}{path}"


async def timed_chunks(client: httpx.AsyncClient, sim: Simulator, body: dict[str, Any]) -> list[tuple[float, Any]]:
    """Each SSE payload of one streamed completion with the seconds since the request was sent."""
    started = time.monotonic()
    chunks = []
    async with client.stream("POST", url(sim, "/v1/chat/completions"), json=body) as reply:
        assert reply.status_code == 200
        async for line in reply.aiter_lines():
            if line.startswith("data: "):
                payload = line.removeprefix("data: ")
                chunks.append((time.monotonic() - started, payload if payload == "[DONE]" else json.loads(payload)))
    return chunks


def test_tokens_come_after_the_ttft_and_then_at_the_pace(running: Callable[..., Any]) -> None:
    async def scenario() -> list[tuple[float, Any]]:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            sim.set_degradation(Degradation(ttft_seconds=0.3, tokens_per_second=20))
            return await timed_chunks(client, sim, STREAMED)

    chunks = asyncio.run(scenario())
    role, *tokens = [(at, chunk) for at, chunk in chunks if chunk != "[DONE]" and chunk["choices"]][:6]
    assert role[1]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [chunk["choices"][0]["delta"]["content"].strip() for _, chunk in tokens] == [
        "Hello!",
        "This",
        "is",
        "a",
        "simulated",
    ]
    # vLLM sends the role chunk with the first token, not before it: TTFT reads alike either way.
    assert role[0] >= 0.3
    for index, (at, _) in enumerate(tokens):
        assert at >= 0.3 + index / 20, f"token {index} came at {at:.3f} s"
    assert chunks[-2][1]["usage"]["completion_tokens"] == 5
    assert chunks[-1][1] == "[DONE]"


def test_a_whole_answer_comes_when_its_last_token_would_have(running: Callable[..., Any]) -> None:
    async def scenario() -> tuple[float, dict[str, Any]]:
        async with running(OLLAMA) as sim, httpx.AsyncClient() as client:
            sim.set_degradation(Degradation(ttft_seconds=0.1, tokens_per_second=10))
            started = time.monotonic()
            reply = await client.post(url(sim, "/v1/chat/completions"), json={**STREAMED, "stream": False})
            return time.monotonic() - started, reply.json()

    took, body = asyncio.run(scenario())
    assert body["usage"]["completion_tokens"] == 5
    assert took >= 0.1 + 4 / 10


def test_ignore_eos_makes_vllm_answer_exactly_max_tokens(running: Callable[..., Any]) -> None:
    async def scenario(config: EngineConfig) -> list[tuple[float, Any]]:
        async with running(config) as sim, httpx.AsyncClient() as client:
            return await timed_chunks(client, sim, {**STREAMED, "max_tokens": 40, "ignore_eos": True})

    vllm = [chunk for _, chunk in asyncio.run(scenario(CHAT)) if chunk != "[DONE]"]
    tokens = [c for c in vllm if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(tokens) == 40
    assert vllm[-2]["choices"][0]["finish_reason"] == "length"
    assert vllm[-1]["usage"]["completion_tokens"] == 40
    # Ollama has no ignore_eos: its reply ends where it ends.
    ollama = [chunk for _, chunk in asyncio.run(scenario(OLLAMA)) if chunk != "[DONE]"]
    assert ollama[-1]["usage"]["completion_tokens"] == 11


def test_every_chat_completion_received_is_counted_whatever_its_answer(running: Callable[..., Any]) -> None:
    async def scenario() -> tuple[list[int], dict[str, int]]:
        async with running(KEYED) as sim, httpx.AsyncClient() as client:
            key = {"Authorization": "Bearer s3cret"}
            chat = url(sim, "/v1/chat/completions")
            sim.set_degradation(Degradation(error_ratio=0.5))
            statuses = [
                (await client.post(chat, json={**STREAMED, "stream": False}, headers=key)).status_code,
                (await client.post(chat, json={**STREAMED, "stream": False}, headers=key)).status_code,
                (await client.post(chat, json={**STREAMED, "model": "gpt-4"}, headers=key)).status_code,
                (await client.post(chat, json=STREAMED)).status_code,
                (await client.get(url(sim, "/v1/models"), headers=key)).status_code,
            ]
            counts = (await client.get(url(sim, "/sim/requests"))).json()
        return statuses, counts

    statuses, counts = asyncio.run(scenario())
    assert statuses == [200, 500, 404, 401, 200]
    first_request, first_answered = counts.pop("firstRequest"), counts.pop("firstAnswered")
    assert counts == {"chatCompletions": 4, "streamed": 2, "inFlight": 0, "mostInFlight": 1, "embeddings": 0}
    # Each client by its User-Agent's product: the first request, and the first 2xx answer (the first chat).
    assert list(first_request) == list(first_answered) == ["python-httpx"]
    assert first_request["python-httpx"] <= first_answered["python-httpx"]


def test_requests_in_flight_are_counted_and_the_most_at_once_kept(
    running: Callable[..., Any], eventually: Callable[..., Any]
) -> None:
    async def scenario() -> tuple[dict[str, int], dict[str, int]]:
        async with running(OLLAMA) as sim, httpx.AsyncClient() as client:
            # One token a second and 100 of them: each stream stays open until the test lets go.
            sim.set_degradation(Degradation(tokens_per_second=1))
            body = {**STREAMED, "max_tokens": 100}
            async with asyncio.TaskGroup() as streams:
                opened = [asyncio.Event() for _ in range(5)]

                async def hold(index: int) -> None:
                    async with client.stream("POST", url(sim, "/v1/chat/completions"), json=body) as reply:
                        async for _ in reply.aiter_lines():
                            opened[index].set()
                            await asyncio.Event().wait()

                tasks = [streams.create_task(hold(index)) for index in range(5)]
                async with asyncio.timeout(10):
                    for event in opened:
                        await event.wait()
                during = (await client.get(url(sim, "/sim/requests"))).json()
                for task in tasks:
                    task.cancel()

            async def settled() -> dict[str, int] | None:
                counts: dict[str, int] = (await client.get(url(sim, "/sim/requests"))).json()
                return counts if counts["inFlight"] == 0 else None

            after = await eventually(settled, 10, "the cancelled streams to end on the simulator")
        return during, after

    during, after = asyncio.run(scenario())
    counted = ("chatCompletions", "streamed", "inFlight", "mostInFlight", "embeddings")
    assert [during[key] for key in counted] == [5, 5, 5, 5, 0]
    assert [after[key] for key in counted] == [5, 5, 0, 5, 0]
    # A stream is answered when it is complete: none of these was.
    assert after["firstAnswered"] == {}


def test_streams_sent_at_once_are_each_counted(running: Callable[..., Any]) -> None:
    body = json.dumps(STREAMED).encode()

    async def slowly() -> AsyncIterator[bytes]:
        # The body in two parts, a moment apart: the simulator awaits it while others are counted.
        yield body[:10]
        await asyncio.sleep(0.05)
        yield body[10:]

    async def scenario() -> dict[str, int]:
        async with running(OLLAMA) as sim, httpx.AsyncClient() as client:
            chat = url(sim, "/v1/chat/completions")
            headers = {"Content-Type": "application/json"}
            await asyncio.gather(*(client.post(chat, content=slowly(), headers=headers) for _ in range(20)))
            counts: dict[str, int] = (await client.get(url(sim, "/sim/requests"))).json()
        return counts

    counts = asyncio.run(scenario())
    assert (counts["chatCompletions"], counts["streamed"]) == (20, 20)
