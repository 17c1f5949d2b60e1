"""Engine-aware checks: does each pod of a color serve the model, as its engine shows it?

vLLM: `GET /health` is 200 (the engine lives), `GET /v1/models` lists the served name in
`data[].id` (Bearer key when set). Ollama: `GET /api/tags` lists the model in `models[].name`,
where a name without a tag means `:latest`; its root URL answers before any model is pulled, so
it proves nothing. With `smoke_request`, one OpenAI chat completion of `max_tokens: 1` on either.

Every failure becomes a `CheckResult` with a message a user can act on; nothing raises. The API
key is sent, never written into a message.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from turnout import metrics
from turnout.api.spec import Engine

# Enough of an engine's error body to name the cause, short enough for a condition message.
_BODY_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class CheckTarget:
    """One pod to check: its name (for messages), IP and the engine's port."""

    pod: str
    ip: str
    port: int


@dataclass(frozen=True)
class CheckResult:
    """One pod, one round. `message` is "" when ok; `latency_seconds` spans all of the pod's requests."""

    pod: str
    ok: bool
    message: str
    latency_seconds: float


@dataclass(frozen=True)
class CheckRound:
    """All pods of a color, one round: passed iff there was a pod and every pod passed."""

    passed: bool
    message: str
    results: tuple[CheckResult, ...]


class _Failed(Exception):
    """A check step failed; the argument is the message the user reads."""


async def check_round(
    engine: Engine,
    served_name: str,
    targets: Sequence[CheckTarget],
    *,
    api_key: str | None,
    timeout_seconds: float,
    smoke_request: bool,
    client: httpx.AsyncClient | None = None,
) -> CheckRound:
    """Check every target concurrently and record each pod's latency in `turnout_check_latency_seconds`.

    `timeout_seconds` bounds each HTTP request as a whole (connect to last byte). `api_key` goes as
    a Bearer token to the `/v1/*` endpoints when set. A `client` given is used and left open;
    otherwise one is made for the round and closed.
    """
    if not targets:
        return CheckRound(passed=False, message="no Ready pods to check", results=())
    if client is None:
        # trust_env=False: an HTTP(S)_PROXY meant for the internet must not carry requests to pod IPs.
        async with httpx.AsyncClient(trust_env=False, follow_redirects=False) as own:
            return await check_round(
                engine,
                served_name,
                targets,
                api_key=api_key,
                timeout_seconds=timeout_seconds,
                smoke_request=smoke_request,
                client=own,
            )
    results = await asyncio.gather(
        *(
            _check_pod(
                client,
                engine,
                served_name,
                t,
                api_key=api_key,
                timeout_seconds=timeout_seconds,
                smoke_request=smoke_request,
            )
            for t in targets
        )
    )
    for result in results:
        metrics.CHECK_LATENCY.labels(engine=str(engine)).observe(result.latency_seconds)
    for target, result in zip(targets, results, strict=True):
        if not result.ok:
            return CheckRound(
                passed=False, message=f"pod {target.pod} ({target.ip}): {result.message}", results=tuple(results)
            )
    return CheckRound(passed=True, message="", results=tuple(results))


def ollama_model_name(name: str) -> str:
    """Ollama's spelling of a model name: `chat` is `chat:latest`; `llama3:8b`, `host:5000/m:q4` stay."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


async def _check_pod(
    client: httpx.AsyncClient,
    engine: Engine,
    served_name: str,
    target: CheckTarget,
    *,
    api_key: str | None,
    timeout_seconds: float,
    smoke_request: bool,
) -> CheckResult:
    probe = _Probe(client, target, api_key, timeout_seconds)
    started = time.monotonic()
    try:
        if engine == Engine.VLLM:
            await _check_vllm(probe, served_name)
        else:
            await _check_ollama(probe, served_name)
        if smoke_request:
            await _check_completion(probe, served_name)
    except _Failed as failed:
        return CheckResult(
            target.pod, ok=False, message=probe.redact(str(failed)), latency_seconds=time.monotonic() - started
        )
    return CheckResult(target.pod, ok=True, message="", latency_seconds=time.monotonic() - started)


async def _check_vllm(probe: _Probe, served_name: str) -> None:
    await probe.request("GET", "/health")
    body = _json_object(await probe.request("GET", "/v1/models"), "/v1/models")
    cards = body.get("data")
    if not isinstance(cards, list):
        raise _Failed('/v1/models answered JSON without a "data" list')
    served = [c["id"] for c in cards if isinstance(c, dict) and isinstance(c.get("id"), str)]
    if served_name not in served:
        raise _Failed(f'/v1/models lacks "{served_name}" ({_listing("serves", served)})')


async def _check_ollama(probe: _Probe, served_name: str) -> None:
    wanted = ollama_model_name(served_name)
    body = _json_object(await probe.request("GET", "/api/tags"), "/api/tags")
    models = body.get("models")
    if not isinstance(models, list):
        raise _Failed('/api/tags answered JSON without a "models" list')
    names = [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]
    if wanted not in names:
        raise _Failed(f'/api/tags lacks "{wanted}" ({_listing("has", names)})')


async def _check_completion(probe: _Probe, served_name: str) -> None:
    path = "/v1/chat/completions"
    request = {"model": served_name, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    body = _json_object(await probe.request("POST", path, json=request), path)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise _Failed(f'{path} answered 200 without "choices"')


class _Probe:
    """HTTP requests to one pod, each bounded by the timeout, every failure turned into `_Failed`."""

    def __init__(
        self, client: httpx.AsyncClient, target: CheckTarget, api_key: str | None, timeout_seconds: float
    ) -> None:
        host = f"[{target.ip}]" if ":" in target.ip else target.ip  # IPv6 pod IPs need brackets
        self._base = f"http://{host}:{target.port}"
        self._client = client
        self._api_key = api_key
        self._timeout = timeout_seconds

    async def request(self, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
        """The response to `method path` when it is 200; raises `_Failed` otherwise."""
        headers = {}
        if self._api_key and path.startswith("/v1/"):
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            # httpx's timeout is per phase (connect, each read); the engine gets one budget overall.
            async with asyncio.timeout(self._timeout):
                response = await self._client.request(
                    method, self._base + path, json=json, headers=headers, timeout=self._timeout
                )
        except (TimeoutError, httpx.TimeoutException):
            raise _Failed(f"{path}: no answer within {self._timeout:g}s") from None
        except httpx.ConnectError as error:
            raise _Failed(f"{path}: {_connect_failure(error)}") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            raise _Failed(f"{path}: {type(error).__name__}: {error}") from None
        if response.status_code == 401:
            raise _Failed(
                f"{path} answered 401: "
                + (
                    "the API key was refused"
                    if self._api_key
                    else "the engine wants an API key and none is set (spec.vllm.apiKeySecretRef)"
                )
            )
        if response.status_code != 200:
            excerpt = _error_excerpt(response)
            raise _Failed(f"{path} answered {response.status_code}" + (f": {excerpt}" if excerpt else ""))
        return response

    def redact(self, message: str) -> str:
        """The message with the API key masked, should an engine ever echo it back."""
        return message.replace(self._api_key, "***") if self._api_key else message


def _connect_failure(error: httpx.ConnectError) -> str:
    cause: BaseException | None = error
    # httpx wraps the socket's error twice ("All connection attempts failed"); the cause says why.
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (the engine is not listening yet, or has died)"
        cause = cause.__cause__ or cause.__context__
    return f"cannot connect ({error})" if str(error) else "cannot connect"


def _json_object(response: httpx.Response, path: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Failed(f"{path} answered 200 with something other than JSON") from None
    if not isinstance(body, dict):
        raise _Failed(f"{path} answered 200 with JSON that is not an object")
    return body


def _error_excerpt(response: httpx.Response) -> str:
    """The engine's own error message when its body has one (vLLM, Ollama, OpenAI shapes), else the text."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        text = response.text.strip()
    else:
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
        else:
            text = response.text.strip()
    text = " ".join(text.split())
    return text if len(text) <= _BODY_EXCERPT_CHARS else text[:_BODY_EXCERPT_CHARS] + "…"


def _listing(verb: str, names: list[str]) -> str:
    if not names:
        return f"{verb} no model yet"
    return f"{verb} " + ", ".join(f'"{n}"' for n in names[:5]) + (" …" if len(names) > 5 else "")
