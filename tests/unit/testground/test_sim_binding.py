"""When a simulator's socket accepts connections: slow starts, refusals, runtime changes."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from testground.behaviour import Behaviour
from testground.engines import EngineConfig

CHAT = EngineConfig("vllm", ("chat",))


def url(sim: Any, path: str) -> str:
    return f"http://{sim.host}:{sim.port}{path}"


def test_refuse_never_listens(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT, "refuse") as sim, httpx.AsyncClient() as client:
            assert not sim.listening
            with pytest.raises(httpx.ConnectError):
                await client.get(url(sim, "/health"))

    asyncio.run(scenario())


def test_slow_start_refuses_then_serves(running: Callable[..., Any], eventually: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT, "slow-start:0.4") as sim, httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(url(sim, "/health"))

            async def up() -> bool:
                return (await client.get(url(sim, "/health"))).status_code == 200

            await eventually(up, 5, "the slow starter to listen")
            assert (await client.get(url(sim, "/v1/models"))).json()["data"][0]["id"] == "chat"

    asyncio.run(scenario())


def test_switching_to_refuse_closes_the_socket_and_back_reopens_it(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        # The client keeps its connection alive: a refusing engine must drop it too.
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            assert (await client.get(url(sim, "/health"))).status_code == 200
            await sim.set_behaviour(Behaviour.parse("refuse"))
            with pytest.raises(httpx.TransportError):
                await client.get(url(sim, "/health"))
            await sim.set_behaviour(Behaviour.parse("healthy"))
            assert (await client.get(url(sim, "/health"))).status_code == 200

    asyncio.run(scenario())


def test_switching_to_fail_after_zero_fails_at_once(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT) as sim, httpx.AsyncClient() as client:
            assert (await client.get(url(sim, "/health"))).status_code == 200
            await sim.set_behaviour(Behaviour.parse("fail-after:0"))
            assert (await client.get(url(sim, "/health"))).status_code == 503

    asyncio.run(scenario())


def test_stop_frees_the_address(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(CHAT) as sim:
            address = (sim.host, sim.port)
        # Nothing listens any more, and the same port can be bound again at once.
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://{address[0]}:{address[1]}/health")
        server = await asyncio.start_server(lambda r, w: None, *address)
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())
