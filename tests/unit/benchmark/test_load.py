"""The load against fake engines: what is sent, what is measured, and every failure counted by its kind.

Most engines here are `httpx.MockTransport` handlers, whose streams are written chunk by chunk; the
clock the load reads is replaced by one the engine moves, so times are exact. The last tests use
the test ground's engine simulators over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiohttp import web

from testground.behaviour import Behaviour
from testground.engines import EngineConfig, EngineState, build_app
from turnout.api.benchmark import BenchmarkResult, TokenCount
from turnout.benchmark import load
from turnout.benchmark.load import EndpointError, LoadPlan, chat_completions_url, run_load
from turnout.benchmark.prompts import built_in_requests

BASE = "http://engine.test:8000/v1"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def prompts(*contents: str) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": content}]} for content in contents]


def plan(**fields: Any) -> LoadPlan:
    values: dict[str, Any] = {"base_url": BASE, "model": "chat", "prompts": prompts("hi"), "requests": 4, **fields}
    return LoadPlan(**values)


def measure(handler: Handler, the_plan: LoadPlan, **options: Any) -> BenchmarkResult:
    async def scenario() -> BenchmarkResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await run_load(the_plan, client=client, **options)

    return asyncio.run(scenario())


def sse(*chunks: dict[str, Any] | str) -> list[bytes]:
    return [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode() for c in chunks]


def delta(content: str | None = None, **fields: Any) -> dict[str, Any]:
    body = {} if content is None else {"content": content}
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {**body, **fields}, **_finish(fields)}],
    }


def _finish(fields: dict[str, Any]) -> dict[str, Any]:
    return {"finish_reason": fields.pop("finish_reason", None)}


def completion(tokens: int, *, usage: bool = True) -> list[bytes]:
    """A vLLM-shaped stream: role chunk, one chunk per token, finish, usage chunk, [DONE]."""
    chunks: list[dict[str, Any] | str] = [delta("", role="assistant")]
    chunks += [delta(f" w{i}") for i in range(tokens)]
    chunks.append(delta(finish_reason="length"))
    if usage:
        chunks.append({"object": "chat.completion.chunk", "choices": [], "usage": {"completion_tokens": tokens}})
    chunks.append("[DONE]")
    return sse(*chunks)


def streamed(parts: list[bytes] | AsyncIterator[bytes], status: int = 200) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        if isinstance(parts, list):
            for part in parts:
                yield part
        else:
            async for part in parts:
                yield part

    return httpx.Response(status, headers={"Content-Type": "text/event-stream"}, content=body())


def test_requests_are_streamed_chat_completions_for_the_model_with_the_key_and_bounded_tokens() -> None:
    seen: list[httpx.Request] = []

    async def engine(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return streamed(completion(5))

    the_plan = plan(
        prompts=[*prompts("one"), {**prompts("two")[0], "max_completion_tokens": 900, "temperature": 0}],
        requests=3,
        concurrency=1,
        max_tokens=7,
        api_key="sk-secret",
    )
    result = measure(engine, the_plan)
    assert [str(request.url) for request in seen] == [f"{BASE}/chat/completions"] * 3
    bodies = [json.loads(request.content) for request in seen]
    assert [body["messages"][0]["content"] for body in bodies] == ["one", "two", "one"]
    assert bodies[1] == {
        "messages": [{"role": "user", "content": "two"}],
        "temperature": 0,
        "model": "chat",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 7,
    }
    assert {request.headers["Authorization"] for request in seen} == {"Bearer sk-secret"}
    assert "sk-secret" not in repr(the_plan)
    assert (result.requests, result.completed, result.errors) == (3, 3, 0)
    assert result.output_tokens == 15
    assert result.tokens_counted_from is TokenCount.USAGE
    assert not result.timed_out


def test_without_max_tokens_each_request_keeps_its_own() -> None:
    seen: list[dict[str, Any]] = []

    async def engine(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return streamed(completion(1))

    measure(engine, plan(prompts=[{**prompts("a")[0], "max_completion_tokens": 9}], requests=1, max_tokens=None))
    assert seen[0]["max_completion_tokens"] == 9
    assert "max_tokens" not in seen[0]


def test_without_usage_tokens_are_the_chunks_that_carried_content() -> None:
    async def engine(request: httpx.Request) -> httpx.Response:
        return streamed(completion(6, usage=False))

    result = measure(engine, plan())
    assert result.output_tokens == 24
    assert result.tokens_counted_from is TokenCount.CHUNKS


class Clock:
    """A clock the fake engine moves: the load's times are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


def test_ttft_is_the_first_content_chunk_and_latency_the_end_of_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(load, "time", SimpleNamespace(perf_counter=clock.perf_counter))

    async def paced() -> AsyncIterator[bytes]:
        for part, seconds in zip(completion(3), [0.5, 0.25, 0.25, 0.25, 0.0, 0.0, 0.0], strict=True):
            # The role chunk comes at once; the first content 0.5 s after it.
            yield part
            clock.now += seconds

    async def engine(request: httpx.Request) -> httpx.Response:
        return streamed(paced())

    result = measure(engine, plan(requests=2, concurrency=1))
    assert result.ttft_p50_seconds == 0.5
    assert result.ttft_mean_seconds == 0.5
    assert result.latency_p95_seconds == 1.25
    assert result.duration_seconds == 2.5
    assert result.output_tokens_per_second == 6 / 2.5
    assert result.requests_per_second == 2 / 2.5


async def _failing_engine(request: httpx.Request) -> httpx.Response:
    """Fails as the prompt says: a status code, a broken or odd stream, a stall, no connection."""
    what = json.loads(request.content)["messages"][0]["content"]
    if what.isdigit():
        return httpx.Response(int(what), json={"error": {"message": "no"}})
    if what == "connect":
        raise httpx.ConnectError("refused", request=request)
    if what == "connect-timeout":
        raise httpx.ConnectTimeout("slow", request=request)
    if what == "cut":
        return streamed(completion(3)[:3])
    if what == "reset":

        async def reset() -> AsyncIterator[bytes]:
            yield completion(1)[0]
            raise httpx.ReadError("connection reset", request=request)

        return streamed(reset())
    if what == "not-json":
        return streamed(sse("{not json"))
    if what == "error-event":
        return streamed(sse(delta("a"), {"error": {"message": "engine died", "code": 500}}))
    if what == "endless-line":
        # Without the bound on a line the load would buffer this until the request's time bound.

        async def endless() -> AsyncIterator[bytes]:
            while True:
                yield b"x" * 65536

        return streamed(endless())
    if what == "redirect":
        return httpx.Response(302, headers={"Location": "http://elsewhere/"})
    if what == "stall":
        await asyncio.Event().wait()
    return streamed(completion(2))


def test_every_failure_is_counted_by_its_kind_and_none_raises() -> None:
    kinds = [
        "503",
        "404",
        "connect",
        "connect-timeout",
        "cut",
        "reset",
        "not-json",
        "error-event",
        "endless-line",
        "redirect",
        "stall",
        "fine",
    ]
    the_plan = plan(prompts=prompts(*kinds), requests=len(kinds), concurrency=4, request_timeout_seconds=0.5)
    result = measure(_failing_engine, the_plan)
    assert result.errors_by_kind == {
        "badStream": 3,
        "brokenStream": 2,
        "connect": 2,
        "http404": 1,
        "http503": 1,
        "streamError": 1,
        "timeout": 1,
    }
    assert (result.completed, result.errors) == (1, 11)
    assert not result.timed_out


def test_no_more_than_concurrency_requests_are_in_flight_and_as_many_are() -> None:
    in_flight = 0
    most = 0
    full = asyncio.Event()

    async def engine(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 3:
            full.set()
        try:
            # The first requests wait for the others, so the bound is reached, then all flow.
            async with asyncio.timeout(10):
                await full.wait()
            return streamed(completion(1))
        finally:
            in_flight -= 1

    result = measure(engine, plan(requests=20, concurrency=3))
    assert result.completed == 20
    assert most == 3


def test_a_run_past_its_time_bound_stops_and_says_so() -> None:
    answered = 0

    async def engine(request: httpx.Request) -> httpx.Response:
        nonlocal answered
        if answered == 2:
            await asyncio.Event().wait()  # from the third request on, no answer ever
        answered += 1
        return streamed(completion(1))

    result = measure(engine, plan(requests=50, concurrency=1, timeout_seconds=0.3))
    assert result.timed_out
    assert (result.requests, result.completed, result.errors) == (50, 2, 0)


def test_progress_is_reported_after_each_request() -> None:
    calls: list[tuple[int, int]] = []

    async def engine(request: httpx.Request) -> httpx.Response:
        return streamed(completion(1))

    measure(engine, plan(requests=5, concurrency=2), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("http://10.0.0.7:8000/v1", "http://10.0.0.7:8000/v1/chat/completions"),
        ("http://10.0.0.7:8000/v1/", "http://10.0.0.7:8000/v1/chat/completions"),
        ("http://10.0.0.7:8000", "http://10.0.0.7:8000/v1/chat/completions"),
        ("http://localhost:11434/v1", "http://localhost:11434/v1/chat/completions"),
        ("https://gw.example/team/v1/chat/completions", "https://gw.example/team/v1/chat/completions"),
        ("http://[fd00::7]:8000", "http://[fd00::7]:8000/v1/chat/completions"),
    ],
)
def test_the_base_url_is_an_openai_base_url(base: str, url: str) -> None:
    assert chat_completions_url(base) == url


@pytest.mark.parametrize("base", ["localhost:8000", "ftp://host/v1", "http://", "http:///v1"])
def test_a_url_that_is_no_http_endpoint_is_refused(base: str) -> None:
    with pytest.raises(EndpointError):
        chat_completions_url(base)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"requests": 0}, "requests must be 1 to 100000 (got 0)"),
        ({"concurrency": 0}, "concurrency must be 1 to 1024 (got 0)"),
        ({"max_tokens": 0}, "max tokens must be at least 1"),
        ({"timeout_seconds": 0}, "the time bound must be above 0 seconds"),
        ({"request_timeout_seconds": -1}, "the request time bound must be above 0 seconds"),
        ({"prompts": []}, "at least one chat request"),
    ],
)
def test_a_plan_out_of_bounds_is_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        plan(**fields)


def test_a_plan_from_the_spec_takes_its_bounds() -> None:
    from turnout.api.spec import Benchmark

    spec = Benchmark.model_validate({"requests": 30, "concurrency": 2, "maxTokens": 64, "timeoutSeconds": 60})
    the_plan = LoadPlan.from_spec(spec, "http://10.0.0.7:8000/v1", "chat", built_in_requests(), api_key=None)
    assert (the_plan.requests, the_plan.concurrency, the_plan.max_tokens, the_plan.timeout_seconds) == (30, 2, 64, 60)


@pytest.mark.parametrize("engine", ["vllm", "ollama"])
def test_a_simulated_engine_over_a_real_socket(engine: str, running: Callable[..., Any]) -> None:
    async def scenario() -> BenchmarkResult:
        async with running(EngineConfig(engine, ("chat",))) as sim:  # type: ignore[arg-type]
            the_plan = LoadPlan(f"http://{sim.host}:{sim.port}/v1", "chat", built_in_requests(), 30, 4, max_tokens=5)
            return await run_load(the_plan)

    result = asyncio.run(scenario())
    assert (result.completed, result.errors) == (30, 0)
    assert result.output_tokens == 30 * 5
    assert result.tokens_counted_from is TokenCount.USAGE
    assert result.ttft_p95_seconds is not None
    assert result.latency_p95_seconds is not None
    assert result.ttft_p95_seconds <= result.latency_p95_seconds


def test_a_closed_port_is_connect_errors(free_port: Callable[[], int]) -> None:
    the_plan = LoadPlan(f"http://127.0.0.1:{free_port()}", "chat", built_in_requests(), requests=3, concurrency=3)
    result = asyncio.run(run_load(the_plan))
    assert result.errors_by_kind == {"connect": 3}


def test_each_worker_keeps_its_connection_from_one_request_to_the_next() -> None:
    peers: set[tuple[str, int]] = set()

    @web.middleware
    async def record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return await handler(request)

    async def scenario() -> BenchmarkResult:
        app = build_app(EngineState(EngineConfig("vllm", ("chat",)), Behaviour()))
        app.middlewares.append(record)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            the_plan = LoadPlan(f"http://127.0.0.1:{port}/v1", "chat", built_in_requests(), requests=40, concurrency=4)
            return await run_load(the_plan)
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()).completed == 40
    assert len(peers) == 4
