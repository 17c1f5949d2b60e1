"""The load of a benchmark: streamed chat completions sent to one OpenAI-compatible endpoint, timed.

`run_load` sends `LoadPlan.requests` requests, at most `concurrency` at a time, each with
`stream: true` and `stream_options: {include_usage: true}`, and times each answer: time to first
token (the first chunk with content), end-to-end latency (to `[DONE]` or the end of the stream),
output tokens (the engine's `usage` when it reports it, else the content chunks). The whole run is
bounded by `timeout_seconds`: past it the run stops and says so. No request's failure raises: each
is counted by its kind. Only counters are kept per answer, so an engine that answers without end
costs time (bounded) and no memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from turnout.api.benchmark import BenchmarkResult
from turnout.api.spec import Benchmark
from turnout.benchmark.prompts import ChatRequest
from turnout.benchmark.results import ErrorKind, RequestSample, http_error, summarise
from turnout.engines.probe import connect_cause

MAX_REQUESTS = 100_000
"""The most requests one run may send."""
MAX_CONCURRENCY = 1024
"""The most requests one run may have in flight."""
MAX_LINE_BYTES = 1024 * 1024
"""The longest line of an answer's stream read; a longer one makes the answer a `badStream`."""
CONNECT_TIMEOUT_SECONDS = 10.0
"""Seconds a request may wait for its connection before it counts as a `connect` error."""

Progress = Callable[[int, int], None]
"""Called after each request comes to an end with (requests ended, requests to send)."""


class EndpointError(ValueError):
    """A base URL that cannot be benchmarked; the message says why."""


@dataclass(frozen=True)
class LoadPlan:
    """One run: which endpoint and model, what to send, how much, how fast, and its time bounds."""

    base_url: str
    """The OpenAI base URL, e.g. `http://10.0.0.7:8000/v1` (Ollama: `http://host:11434/v1`); one
    without a path means `/v1`."""
    model: str
    """The model name sent in each request."""
    prompts: Sequence[ChatRequest]
    """The chat requests, sent in turn (request i is `prompts[i % len(prompts)]`)."""
    requests: int = 100
    """Requests to send, 1 to `MAX_REQUESTS`."""
    concurrency: int = 8
    """Requests in flight at once, 1 to `MAX_CONCURRENCY`."""
    max_tokens: int | None = 128
    """`max_tokens` of every request; None keeps each chat request's own (or the engine's default)."""
    timeout_seconds: float = 300.0
    """Seconds the whole run may take before it is stopped."""
    request_timeout_seconds: float | None = None
    """Seconds one request may take, connect to last byte, before it counts as a `timeout` error;
    None: bounded by the run's time only."""
    api_key: str | None = field(default=None, repr=False)
    """Sent as `Authorization: Bearer <key>` when set."""

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.requests <= MAX_REQUESTS:
            problems.append(f"requests must be 1 to {MAX_REQUESTS} (got {self.requests})")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            problems.append(f"concurrency must be 1 to {MAX_CONCURRENCY} (got {self.concurrency})")
        if self.max_tokens is not None and self.max_tokens < 1:
            problems.append(f"max tokens must be at least 1 (got {self.max_tokens})")
        if not self.timeout_seconds > 0:
            problems.append(f"the time bound must be above 0 seconds (got {self.timeout_seconds:g})")
        if self.request_timeout_seconds is not None and not self.request_timeout_seconds > 0:
            problems.append(f"the request time bound must be above 0 seconds (got {self.request_timeout_seconds:g})")
        if not self.prompts:
            problems.append("there must be at least one chat request to send")
        if problems:
            raise ValueError("; ".join(problems))
        chat_completions_url(self.base_url)

    @classmethod
    def from_spec(
        cls, spec: Benchmark, base_url: str, model: str, prompts: Sequence[ChatRequest], api_key: str | None
    ) -> LoadPlan:
        """The run `rollout.benchmark` asks for against one pod at `base_url` serving `model`."""
        return cls(
            base_url=base_url,
            model=model,
            prompts=prompts,
            requests=spec.requests,
            concurrency=spec.concurrency,
            max_tokens=spec.max_tokens,
            timeout_seconds=spec.timeout_seconds,
            api_key=api_key,
        )

    def body(self, index: int) -> dict[str, Any]:
        """The JSON body of request number `index`: its chat request, streamed, for this model."""
        body = {**self.prompts[index % len(self.prompts)]}
        body.update(model=self.model, stream=True, stream_options={"include_usage": True})
        if self.max_tokens is not None:
            # vLLM takes max_completion_tokens over max_tokens: one bound only, the plan's.
            body.pop("max_completion_tokens", None)
            body["max_tokens"] = self.max_tokens
        return body


def chat_completions_url(base_url: str) -> str:
    """`base_url`'s chat completions endpoint: `<base>/chat/completions`, `/v1` when the URL has no path.

    Raises EndpointError for a URL that is not http(s)://host[:port][/path].
    """
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError) as error:
        raise EndpointError(f"{base_url!r} is not a URL ({error})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise EndpointError(f"{base_url!r} is not an http:// or https:// URL with a host")
    path = url.path.rstrip("/")
    if path.endswith("/chat/completions"):
        return str(url.copy_with(path=path, query=None, fragment=None))
    return str(url.copy_with(path=(path or "/v1") + "/chat/completions", query=None, fragment=None))


async def connect_problem(base_url: str, *, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS) -> str | None:
    """Why nothing answers HTTP at `base_url` (one line), or None when something does, whatever it says.

    One `GET <base>/models` with no key: a run against an endpoint that cannot be reached would only
    count connect errors, a time bound later.
    """
    url = chat_completions_url(base_url).removesuffix("/chat/completions") + "/models"
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=timeout_seconds) as client:
            await client.get(url)
    except httpx.ConnectTimeout:
        return f"no connection within {timeout_seconds:g} s"
    except httpx.ConnectError as error:
        return _connect_failure(error)
    except httpx.TimeoutException:
        return None  # it accepted the connection: slow, not unreachable
    except (httpx.HTTPError, OSError) as error:
        return f"the request failed ({type(error).__name__})"
    return None


async def run_load(
    plan: LoadPlan, *, progress: Progress | None = None, client: httpx.AsyncClient | None = None
) -> BenchmarkResult:
    """Send the plan's load and sum its answers up; never raises for what the endpoint does.

    Each of the `concurrency` workers has a connection of its own, kept alive from one request to the
    next (httpx's pool slows down with the connections it holds: one pool per connection costs least),
    and ignores proxy settings from the environment. A `client` given is shared by all workers instead,
    and left open.
    """
    url = chat_completions_url(plan.base_url)
    headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
    if plan.api_key:
        headers["Authorization"] = f"Bearer {plan.api_key}"
    samples: list[RequestSample] = []
    # One iterator shared by the workers: each takes the next request number until none is left.
    numbers = iter(range(plan.requests))

    async def worker(connection: httpx.AsyncClient) -> None:
        for number in numbers:
            request = _request(connection, url, headers, plan.body(number))
            if plan.request_timeout_seconds is not None:
                samples.append(await _bounded(request, plan.request_timeout_seconds))
            else:
                samples.append(await request)
            if progress is not None:
                progress(len(samples), plan.requests)

    async with contextlib.AsyncExitStack() as stack:
        count = min(plan.concurrency, plan.requests)
        if client is not None:
            connections = [client] * count
        else:
            tls = httpx.create_ssl_context()  # made once: each client would otherwise load the CA bundle
            limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
            connections = [
                await stack.enter_async_context(
                    httpx.AsyncClient(trust_env=False, follow_redirects=False, limits=limits, verify=tls)
                )
                for _ in range(count)
            ]
        timed_out = False
        started = time.perf_counter()
        try:
            async with asyncio.timeout(plan.timeout_seconds), asyncio.TaskGroup() as workers:
                for connection in connections:
                    workers.create_task(worker(connection))
        except TimeoutError:
            timed_out = True
        duration = time.perf_counter() - started
    return summarise(samples, requests=plan.requests, duration_seconds=duration, timed_out=timed_out)


async def _bounded(request: Coroutine[Any, Any, RequestSample], seconds: float) -> RequestSample:
    try:
        async with asyncio.timeout(seconds):
            return await request
    except TimeoutError:
        return RequestSample(error=ErrorKind.TIMEOUT)


async def _request(client: httpx.AsyncClient, url: str, headers: dict[str, str], body: dict[str, Any]) -> RequestSample:
    """One streamed chat completion, timed; every failure becomes a sample with its kind."""
    started = time.perf_counter()
    try:
        timeout = httpx.Timeout(None, connect=CONNECT_TIMEOUT_SECONDS)
        async with client.stream("POST", url, json=body, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                return RequestSample(error=http_error(response.status_code))
            if response.status_code != 200:
                return RequestSample(error=ErrorKind.BAD_STREAM)
            return await _read_stream(response, started)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return RequestSample(error=ErrorKind.CONNECT)
    except httpx.TimeoutException:
        return RequestSample(error=ErrorKind.TIMEOUT)
    except (httpx.HTTPError, OSError):
        return RequestSample(error=ErrorKind.BROKEN_STREAM)


class _StreamFailed(Exception):
    def __init__(self, kind: ErrorKind) -> None:
        self.kind = kind


@dataclass
class _Answer:
    """What one streamed answer has shown so far: counters only."""

    started: float
    first_content: float | None = None
    content_chunks: int = 0
    usage_tokens: int | None = None
    finished: bool = False
    done: bool = False

    def read(self, payload: str) -> None:
        """Take one SSE `data:` payload into account; raises _StreamFailed."""
        if payload == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload)
        except (ValueError, RecursionError):
            raise _StreamFailed(ErrorKind.BAD_STREAM) from None
        if not isinstance(chunk, dict):
            raise _StreamFailed(ErrorKind.BAD_STREAM)
        if chunk.get("error") is not None:
            raise _StreamFailed(ErrorKind.STREAM_ERROR)
        usage = chunk.get("usage")
        if isinstance(usage, dict) and _is_count(usage.get("completion_tokens")):
            self.usage_tokens = usage["completion_tokens"]
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return
        choice = choices[0]
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(
            isinstance(delta.get(key), str) and delta[key] for key in ("content", "reasoning_content", "reasoning")
        ):
            if self.first_content is None:
                self.first_content = time.perf_counter()
            self.content_chunks += 1
        if choice.get("finish_reason"):
            self.finished = True

    def sample(self) -> RequestSample:
        """The request's sample, once its stream has ended."""
        if not (self.done or self.finished):
            raise _StreamFailed(ErrorKind.BROKEN_STREAM)
        return RequestSample(
            ttft_seconds=None if self.first_content is None else self.first_content - self.started,
            latency_seconds=time.perf_counter() - self.started,
            output_tokens=self.content_chunks if self.usage_tokens is None else self.usage_tokens,
            tokens_from_usage=self.usage_tokens is not None,
        )


async def _read_stream(response: httpx.Response, started: float) -> RequestSample:
    answer = _Answer(started)
    try:
        async with contextlib.aclosing(_lines(response)) as lines:
            async for line in lines:
                # SSE: `data: <payload>`; comments (`:`), `event:`, `id:` and blank lines carry no token.
                if line.startswith(b"data:"):
                    answer.read(line[5:].strip().decode("utf-8", errors="replace"))
                    if answer.done:
                        break
            sample = answer.sample()
            # The body's end must be read for the connection to be used again; what an engine sends
            # after [DONE] is read up to a line's bound, then the connection is dropped instead.
            left = MAX_LINE_BYTES
            async for line in lines:
                left -= len(line) + 1
                if left < 0:
                    break
            return sample
    except _StreamFailed as failed:
        return RequestSample(error=failed.kind)


async def _lines(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The lines of the body, each at most `MAX_LINE_BYTES`; raises _StreamFailed on a longer one."""
    pending = b""
    async for chunk in response.aiter_bytes():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r")
        if len(pending) > MAX_LINE_BYTES:
            raise _StreamFailed(ErrorKind.BAD_STREAM)
    if pending:
        yield pending.rstrip(b"\r")


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _connect_failure(error: httpx.ConnectError) -> str:
    if connect_cause(error, ConnectionRefusedError):
        return "connection refused"
    if connect_cause(error, socket.gaierror):
        return "unknown host"
    return "cannot connect"
