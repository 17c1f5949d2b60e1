"""When the operator looks at a backend again: retries after a failure back off, idle resyncs spread out,
and only so many backends are reconciled at once."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import kopf
import pytest

from turnout import handlers
from turnout.cli import build_parser
from turnout.handlers import ERROR_RETRY_CAP_SECONDS, ERROR_RETRY_SECONDS, RESYNC_SPREAD, resync_delay, retry_delay
from turnout.health import Liveness
from turnout.rollout.plan import IDLE_RESYNC_SECONDS


def test_retries_back_off_doubling_up_to_the_cap() -> None:
    ceilings = [retry_delay(failures, jitter=0.999999) for failures in range(1, 10)]
    assert ceilings[:3] == [ERROR_RETRY_SECONDS * 2**n * (0.5 + 0.999999 / 2) for n in range(3)]
    assert max(ceilings) <= ERROR_RETRY_CAP_SECONDS
    assert retry_delay(1000, jitter=0.999999) <= ERROR_RETRY_CAP_SECONDS


def test_backends_that_failed_together_do_not_retry_in_step() -> None:
    spread = {retry_delay(3, jitter=j / 10) for j in range(10)}
    assert len(spread) == 10
    assert min(spread) == ERROR_RETRY_SECONDS * 4 * 0.5


def test_idle_backends_do_not_resync_in_step() -> None:
    spread = [resync_delay(IDLE_RESYNC_SECONDS, jitter=j / 10) for j in range(10)]
    assert len(set(spread)) == 10
    assert min(spread) == IDLE_RESYNC_SECONDS * (1 - RESYNC_SPREAD)
    assert max(spread) < IDLE_RESYNC_SECONDS * (1 + RESYNC_SPREAD)


def test_a_step_that_asks_to_be_seen_soon_is_not_delayed() -> None:
    assert resync_delay(5.0, jitter=0.9) == 5.0


class Stopped:
    """A daemon's stop flag, as Kopf hands it: false until set, awaitable."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> None:
        await self.event.wait()


class Cluster:
    def may_write(self) -> bool:
        return True


async def run_daemons(bodies: list[dict[str, Any]], reconciles_at_once: int, until: asyncio.Event) -> None:
    """Run a backend daemon for each of `bodies`, with that many turns, until `until` is set (10 s at most)."""
    memo = kopf.Memo(cluster=Cluster(), liveness=Liveness(), reconciles_at_once=reconciles_at_once)
    handlers.configure(settings=kopf.OperatorSettings(), memo=memo)
    stopped = Stopped()
    daemons = [
        asyncio.create_task(
            handlers.run_backend(stopped=stopped, body=kopf.Body(body), memo=memo, logger=logging.getLogger("test"))
        )
        for body in bodies
    ]
    try:
        await asyncio.wait_for(until.wait(), timeout=10)
    finally:
        stopped.event.set()
        for daemon in daemons:  # one still reconciling (a test that fails) must not hang the test
            daemon.cancel()
        await asyncio.gather(*daemons, return_exceptions=True)


def test_only_so_many_backends_are_reconciled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    running: set[str] = set()
    most = 0
    done: list[str] = []
    all_done = asyncio.Event()

    async def reconcile(cluster: Any, namespace: str, name: str, emit: Any) -> float:
        nonlocal most
        running.add(name)
        most = max(most, len(running))
        await asyncio.sleep(0.01)
        running.discard(name)
        done.append(name)
        if len(done) == 12:
            all_done.set()
        return IDLE_RESYNC_SECONDS

    monkeypatch.setattr(handlers, "reconcile", reconcile)

    bodies = [{"metadata": {"namespace": "ml", "name": f"b{i}"}, "spec": {}} for i in range(12)]
    asyncio.run(run_daemons(bodies, reconciles_at_once=3, until=all_done))
    assert sorted(done) == sorted(f"b{i}" for i in range(12))
    assert most == 3


def test_the_run_commands_bound_is_a_whole_number_of_one_or_more(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(["run", "--reconciles-at-once", "4"]).reconciles_at_once == 4
    for wrong in ("0", "many"):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "--reconciles-at-once", wrong])
    assert "--reconciles-at-once: 0 is less than 1" in capsys.readouterr().err
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run_help = commands.choices["run"].format_help()
    assert f"(default {handlers.RECONCILES_AT_ONCE})" in " ".join(run_help.split())


def test_a_benchmark_keeps_no_turn_from_the_other_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """One turn, held by a benchmark that runs until the test ends it: another backend is reconciled meanwhile."""
    benchmark_ends = asyncio.Event()
    other_reconciled = asyncio.Event()

    async def reconcile(cluster: Any, namespace: str, name: str, emit: Any) -> float:
        if name == "benchmarking":
            await benchmark_ends.wait()
        else:
            other_reconciled.set()
            benchmark_ends.set()
        return IDLE_RESYNC_SECONDS

    monkeypatch.setattr(handlers, "reconcile", reconcile)

    bodies = [
        {"metadata": {"namespace": "ml", "name": "benchmarking"}, "spec": {}, "status": {"phase": "Benchmarking"}},
        {"metadata": {"namespace": "ml", "name": "other"}, "spec": {}, "status": {"phase": "Verifying"}},
    ]
    asyncio.run(run_daemons(bodies, reconciles_at_once=1, until=other_reconciled))
