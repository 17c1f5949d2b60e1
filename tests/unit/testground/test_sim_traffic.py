"""A degraded simulator and its /metrics: the 500s and the latency it was told to add are what turnout reads.

The simulated vLLM's metrics are read with turnout's own vLLM profile (`VLLM.traffic`), so these
tests also prove that the simulator serves what the parser expects of a real vLLM.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from testground.behaviour import Degradation
from testground.engines import EngineConfig
from testground.simulator import Simulator
from turnout.api.traffic import TrafficCounters
from turnout.engines.vllm import vllm_traffic

CHAT = EngineConfig("vllm", ("chat",))
KEYED = EngineConfig("vllm", ("chat",), api_key="s3cret")
HELLO = {"model": "chat", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 3}


def url(sim: Simulator, path: str) -> str:
    return f"http://{sim.host}:{sim.port}{path}"


async def traffic(client: httpx.AsyncClient, sim: Simulator) -> TrafficCounters:
    return vllm_traffic((await client.get(url(sim, "/metrics"))).text)


def test_an_error_ratio_fails_that_share_of_chat_completions_with_vllms_error(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            sim.set_degradation(Degradation(error_ratio=0.2))
            replies = [await client.post(url(sim, "/v1/chat/completions"), json=HELLO) for _ in range(100)]
            counted = await traffic(client, sim)
        assert {reply.status_code for reply in replies} == {200, 500}
        failed = [reply for reply in replies if reply.status_code == 500]
        assert abs(len(failed) - 20) <= 2
        assert failed[0].json()["error"]["type"] == "InternalServerError"
        assert failed[0].json()["error"]["code"] == 500
        assert (counted.requests, counted.errors) == (100, len(failed))

    asyncio.run(scenario())


def test_added_latency_moves_the_latency_histograms(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            await client.post(url(sim, "/v1/chat/completions"), json=HELLO)
            before = await traffic(client, sim)
            # Live, as the supervisor changes it when the pod's annotation changes.
            sim.set_degradation(Degradation(latency_seconds=0.55))
            await asyncio.gather(*(client.post(url(sim, "/v1/chat/completions"), json=HELLO) for _ in range(4)))
            window = (await traffic(client, sim)).since(before)
        assert window is not None
        for histogram in (window.latency, window.ttft):
            assert histogram.count == 4
            # No observation at or below the 0.5 s bound: each waited 0.55 s more.
            assert histogram.counts[histogram.le.index(0.5)] == 0
            p95 = histogram.quantile(0.95)
            assert p95 is not None
            assert p95 > 0.5
        assert window.latency.sum > 4 * 0.5

    asyncio.run(scenario())


def test_turnout_reads_back_what_was_sent(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(KEYED) as sim, httpx.AsyncClient(headers={"Authorization": "Bearer s3cret"}) as client:
            sim.set_degradation(Degradation(error_ratio=0.3))
            chat = url(sim, "/v1/chat/completions")
            statuses = [(await client.post(chat, json=HELLO)).status_code for _ in range(9)]
            async with client.stream("POST", chat, json={**HELLO, "stream": True}) as streamed:
                statuses.append(streamed.status_code)
                await streamed.aread()
            # Not inference, or refused before vLLM counts: none of these is a request turnout counts.
            await client.get(url(sim, "/v1/models"))
            await client.get(url(sim, "/health"))
            assert (await client.post(chat, json=HELLO, headers={"Authorization": "Bearer nope"})).status_code == 401
            # The frontend's refusal: an inference request, not an engine's.
            assert (await client.post(chat, json={**HELLO, "model": "gpt-4"})).status_code == 404
            counted = await traffic(client, sim)
        assert statuses.count(500) == 3
        assert (counted.requests, counted.errors) == (11, 3)
        assert counted.latency.count == 10  # what the engine ran, its failures too
        assert counted.ttft.count == 7  # what gave a first token

    asyncio.run(scenario())


def test_an_ollama_simulator_fails_its_share_too(running: Callable[..., Any]) -> None:
    async def scenario() -> list[int]:
        async with running(EngineConfig("ollama", ("chat",))) as sim, httpx.AsyncClient() as client:
            sim.set_degradation(Degradation(error_ratio=0.5))
            chat = url(sim, "/v1/chat/completions")
            return [(await client.post(chat, json=HELLO)).status_code for _ in range(4)]

    assert asyncio.run(scenario()) == [200, 500, 200, 500]
