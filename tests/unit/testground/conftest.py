"""Fixtures for the simulator unit tests: everything binds 127.0.0.1 on a free port."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from testground.behaviour import Behaviour
from testground.engines import EngineConfig
from testground.simulator import Simulator

LOOPBACK = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a port that is free on 127.0.0.1 right now."""
    return _free_port


@asynccontextmanager
async def _running(config: EngineConfig, behaviour: str = "healthy") -> AsyncIterator[Simulator]:
    sim = Simulator(LOOPBACK, _free_port(), config, Behaviour.parse(behaviour))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def running() -> Callable[..., Any]:
    """`async with running(config, "behaviour") as sim:` a simulator on 127.0.0.1, stopped after."""
    return _running


async def _eventually(probe: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        try:
            value = await probe()
            if value:
                return value
        except Exception:
            if time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """`await eventually(async_probe, within_seconds, what)`: poll until the probe returns something truthy."""
    return _eventually
