"""HTTP requests to one pod, as an engine's check makes them: each bounded, each failure one line.

An engine's `check` gets a `PodProbe` and raises `CheckFailed` with a message a user can act on.
The API key is sent as a Bearer token to the OpenAI endpoints (`/v1/*`), never written into a message.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from turnout import USER_AGENT

MAX_BODY_BYTES = 1024 * 1024
"""The most of an answer a check reads; an engine's answer to a check is kilobytes, a longer one fails."""
MAX_NAME_CHARS = 80
"""A model name in a message is cut to this many characters."""
# Enough of an engine's error body to name the cause, short enough for a condition message.
_BODY_EXCERPT_CHARS = 200
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class CheckFailed(Exception):
    """A check of a pod failed; the argument is the message the user reads."""


@dataclass(frozen=True)
class Answer:
    """A pod's answer to one request: its status code and its body (at most `MAX_BODY_BYTES`)."""

    status_code: int
    body: bytes
    complete: bool
    """False when the body went on past `MAX_BODY_BYTES` and was not read to its end."""


def bearer_token_problem(value: bytes) -> str | None:
    """Why `value` cannot be sent as a Bearer token (`Authorization` is printable ASCII), None when it can.

    The words describe the value and never quote it: they end up in status, Events and logs.
    """
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8"
    if not text:
        return "is empty"
    if text != text.strip():
        return "starts or ends with whitespace (a trailing newline, as `echo` writes, is the usual cause)"
    if any(character.isspace() for character in text):
        return "contains whitespace"
    if _CONTROL.search(text):
        return "contains control characters"
    if not text.isascii():
        return "contains non-ASCII characters"
    return None


def pod_client() -> httpx.AsyncClient:
    """A client for requests to pod IPs, named `turnout` in its User-Agent (as to the API server), so an
    engine's access log tells turnout's checks from clients and probes; the caller closes it."""
    # trust_env=False: an HTTP(S)_PROXY meant for the internet must not carry requests to pod IPs.
    return httpx.AsyncClient(
        trust_env=False, follow_redirects=False, verify=_tls_context(), headers={"User-Agent": USER_AGENT}
    )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every client (for an https Prometheus address): making one loads
    the CA bundle, which was a fifth of the operator's CPU with a thousand backends' checks."""
    return ssl.create_default_context()


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

    async def request(self, method: str, path: str, json: dict[str, Any] | None = None) -> Answer:
        """The answer to `method path` when it is 200 with a body of at most `MAX_BODY_BYTES`; raises `CheckFailed`.

        No text of the HTTP client's errors reaches the message: it can quote the request's headers.
        """
        # A compressed body would be inflated before it is counted: ask for none, and refuse one.
        headers = {"Accept-Encoding": "identity"}
        if self._api_key and path.startswith("/v1/"):
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            # httpx's timeout is per phase (connect, each read); the engine gets one budget overall.
            async with (
                asyncio.timeout(self._timeout),
                self._client.stream(
                    method, self._base + path, json=json, headers=headers, timeout=self._timeout
                ) as response,
            ):
                encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
                answer = await read_bounded(response)
        except (TimeoutError, httpx.TimeoutException):
            raise CheckFailed(f"{path}: no answer within {self._timeout:g}s") from None
        except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as error:
            raise CheckFailed(f"{path}: {_failure(error)}") from None
        if response.status_code == 401:
            raise CheckFailed(f"{path} answered 401: {self._refusal()}")
        if encoding not in ("", "identity"):
            raise CheckFailed(f"{path} answered with a compressed body, which turnout did not ask for")
        if answer.status_code != 200:
            excerpt = self._error_excerpt(answer)
            raise CheckFailed(f"{path} answered {answer.status_code}" + (f": {excerpt}" if excerpt else ""))
        if not answer.complete:
            raise CheckFailed(f"{path} answered with more than {MAX_BODY_BYTES // 1024} KiB, more than a check reads")
        return answer

    async def json_object(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON object of a 200 answer to `method path` (sending `payload` as JSON); raises `CheckFailed`."""
        body = _parsed(await self.request(method, path, json=payload))
        if body is None:
            raise CheckFailed(f"{path} answered 200 with something other than JSON")
        if not isinstance(body, dict):
            raise CheckFailed(f"{path} answered 200 with JSON that is not an object")
        return body

    async def expect_listed(
        self,
        path: str,
        wanted: str,
        *,
        list_key: str,
        name_key: str,
        verb: str,
        same: Callable[[str], bool] | None = None,
    ) -> None:
        """`GET path` lists `wanted`: its `list_key` list holds an object whose `name_key` is `wanted`
        (or, with `same`, a name for which `same` is true: the engine's own idea of equal names).

        Raises `CheckFailed` naming what the pod lists instead ("serves", "has": the `verb` of that part).
        """
        items = (await self.json_object("GET", path)).get(list_key)
        if not isinstance(items, list):
            raise CheckFailed(f'{path} answered JSON without a "{list_key}" list')
        names = [item[name_key] for item in items if isinstance(item, dict) and isinstance(item.get(name_key), str)]
        if not any(same(name) if same else name == wanted for name in names):
            raise CheckFailed(f'{path} lacks "{self.shown(wanted)}" ({self._listing(verb, names)})')

    async def embedding_length(self, path: str, payload: dict[str, Any], *vector_at: str | int) -> int:
        """`POST path` with `payload`, and the length of the vector found at `vector_at` (keys and indexes
        into the JSON answer, e.g. `"data", 0, "embedding"`): a non-empty list of numbers.

        Raises `CheckFailed` naming where the answer departs from that.
        """
        found: Any = await self.json_object("POST", path, payload)
        where = ""
        for step in vector_at:
            where += f"[{step}]" if isinstance(step, int) else (f".{step}" if where else step)
            if isinstance(step, int):
                found = found[step] if isinstance(found, list) and len(found) > step else None
            else:
                found = found.get(step) if isinstance(found, dict) else None
            if found is None:
                raise CheckFailed(f"{path} answered 200 without {where}")
        if not isinstance(found, list) or not found:
            raise CheckFailed(f"{path} answered 200 with {where} that is not a vector (a non-empty list of numbers)")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in found):
            raise CheckFailed(f"{path} answered 200 with {where} holding something other than numbers")
        return len(found)

    def redact(self, message: str) -> str:
        """The message with the API key masked, should an engine ever echo it back."""
        return message.replace(self._api_key, "***") if self._api_key else message

    def shown(self, text: str, limit: int = MAX_NAME_CHARS) -> str:
        """Text from an engine as a message quotes it: key masked, then on one line, cut at `limit` with "…"."""
        # Masked before the cut: a key cut in half would no longer be recognised.
        text = " ".join(_CONTROL.sub(" ", self.redact(text)).split())
        return text if len(text) <= limit else text[:limit] + "…"

    def _listing(self, verb: str, names: list[str]) -> str:
        if not names:
            return f"{verb} no model yet"
        return f"{verb} " + ", ".join(f'"{self.shown(n)}"' for n in names[:5]) + (" …" if len(names) > 5 else "")

    def _error_excerpt(self, answer: Answer) -> str:
        """The engine's own error message when its body has one (vLLM, Ollama, OpenAI shapes), else the text."""
        body = _parsed(answer)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]
        elif isinstance(error, str):
            text = error
        else:
            text = answer.body[: _BODY_EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
        return self.shown(text, _BODY_EXCERPT_CHARS)

    def _refusal(self) -> str:
        if self._api_key:
            return "the API key was refused"
        if self._api_key_field:
            return f"the engine wants an API key and none is set ({self._api_key_field})"
        return "the engine wants an API key, and turnout has none to send to this engine"


async def read_bounded(response: httpx.Response) -> Answer:
    """The body as it comes off the wire, stopped after `MAX_BODY_BYTES`."""
    body = bytearray()
    async for chunk in _raw_chunks(response):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return Answer(response.status_code, bytes(body[:MAX_BODY_BYTES]), complete=False)
    return Answer(response.status_code, bytes(body), complete=True)


async def _raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    if response.is_stream_consumed:
        yield response.content  # a transport that read the body itself (httpx.MockTransport)
        return
    async for chunk in response.aiter_raw():
        yield chunk


def _parsed(answer: Answer) -> Any:
    """The body as JSON, or None when it is not JSON (or too deeply nested to read)."""
    if not answer.complete:
        return None
    try:
        return json.loads(answer.body)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None


def _failure(error: Exception) -> str:
    """A fixed sentence for a request that got no answer; the error's own text is never shown."""
    if isinstance(error, httpx.ConnectError):
        return _connect_failure(error)
    if isinstance(error, httpx.RemoteProtocolError):
        return "the answer was not valid HTTP"
    if isinstance(error, httpx.ReadError):
        return "the connection broke while reading the answer"
    if isinstance(error, httpx.WriteError):
        return "the connection broke while sending the request"
    # The class name says what kind of failure it was, and cannot hold what was sent.
    return f"the request failed ({type(error).__name__})"


def _connect_failure(error: httpx.ConnectError) -> str:
    if connect_cause(error, ConnectionRefusedError):
        return "connection refused (the engine is not listening yet, or has died)"
    return "cannot connect"


def connect_cause(error: httpx.ConnectError, kind: type[BaseException]) -> bool:
    """Whether the socket's error under `error` is a `kind`: httpx wraps it twice ("All connection
    attempts failed"), and its own text is never shown."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, kind):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
