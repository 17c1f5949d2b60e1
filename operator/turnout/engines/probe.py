"""HTTP requests to one pod, as an engine's check makes them: each bounded, each failure one line.

An engine's `check` gets a `PodProbe` and raises `CheckFailed` with a message a user can act on.
The API key is sent as a Bearer token to the OpenAI endpoints (`/v1/*`), never written into a message.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

# Enough of an engine's error body to name the cause, short enough for a condition message.
_BODY_EXCERPT_CHARS = 200


class CheckFailed(Exception):
    """A check of a pod failed; the argument is the message the user reads."""


class PodProbe:
    """HTTP requests to one pod, each bounded by the timeout, every failure turned into `CheckFailed`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        ip: str,
        port: int,
        *,
        api_key: str | None,
        api_key_field: str | None,
        timeout_seconds: float,
    ) -> None:
        host = f"[{ip}]" if ":" in ip else ip  # IPv6 pod IPs need brackets
        self._base = f"http://{host}:{port}"
        self._client = client
        self._api_key = api_key
        self._api_key_field = api_key_field
        self._timeout = timeout_seconds

    async def request(self, method: str, path: str, json: dict[str, Any] | None = None) -> httpx.Response:
        """The response to `method path` when it is 200; raises `CheckFailed` otherwise."""
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
            raise CheckFailed(f"{path}: no answer within {self._timeout:g}s") from None
        except httpx.ConnectError as error:
            raise CheckFailed(f"{path}: {_connect_failure(error)}") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
            raise CheckFailed(f"{path}: {type(error).__name__}: {error}") from None
        if response.status_code == 401:
            raise CheckFailed(f"{path} answered 401: {self._refusal()}")
        if response.status_code != 200:
            excerpt = _error_excerpt(response)
            raise CheckFailed(f"{path} answered {response.status_code}" + (f": {excerpt}" if excerpt else ""))
        return response

    async def json_object(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON object of a 200 answer to `method path` (sending `payload` as JSON); raises `CheckFailed`."""
        response = await self.request(method, path, json=payload)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CheckFailed(f"{path} answered 200 with something other than JSON") from None
        if not isinstance(body, dict):
            raise CheckFailed(f"{path} answered 200 with JSON that is not an object")
        return body

    async def expect_listed(self, path: str, wanted: str, *, list_key: str, name_key: str, verb: str) -> None:
        """`GET path` lists `wanted`: its `list_key` list holds an object whose `name_key` is `wanted`.

        Raises `CheckFailed` naming what the pod lists instead ("serves", "has": the `verb` of that part).
        """
        items = (await self.json_object("GET", path)).get(list_key)
        if not isinstance(items, list):
            raise CheckFailed(f'{path} answered JSON without a "{list_key}" list')
        names = [item[name_key] for item in items if isinstance(item, dict) and isinstance(item.get(name_key), str)]
        if wanted not in names:
            raise CheckFailed(f'{path} lacks "{wanted}" ({_listing(verb, names)})')

    def redact(self, message: str) -> str:
        """The message with the API key masked, should an engine ever echo it back."""
        return message.replace(self._api_key, "***") if self._api_key else message

    def _refusal(self) -> str:
        if self._api_key:
            return "the API key was refused"
        if self._api_key_field:
            return f"the engine wants an API key and none is set ({self._api_key_field})"
        return "the engine wants an API key, and turnout has none to send to this engine"


def _connect_failure(error: httpx.ConnectError) -> str:
    cause: BaseException | None = error
    # httpx wraps the socket's error twice ("All connection attempts failed"); the cause says why.
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (the engine is not listening yet, or has died)"
        cause = cause.__cause__ or cause.__context__
    return f"cannot connect ({error})" if str(error) else "cannot connect"


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
