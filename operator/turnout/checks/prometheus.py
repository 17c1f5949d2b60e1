"""A canary's metrics from the team's own Prometheus: one instant query each, read into one number.

Beside the scraping of the pods (`checks.traffic`), with the same bounds: each query is one GET of
`<address>/api/v1/query`, bounded by the checks' timeout as a whole and its answer by
`MAX_BODY_BYTES`. Nothing raises: each answer is a value, no data (`value` None, the step waits),
or a problem a person reads (the round fails). A problem never quotes the HTTP client's errors;
it may quote Prometheus' own error text, cut short and on one line.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from turnout.engines.probe import MAX_BODY_BYTES, connect_cause, pod_client, read_bounded

# Enough of Prometheus' own error to name the cause, short enough for a condition message.
_ERROR_CHARS = 200
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_VARIABLE = re.compile(r"\{\{ *([A-Za-z]+) *\}\}")


@dataclass(frozen=True)
class QueryAnswer:
    """What Prometheus answered to one query: a number, no data, or why there is no answer."""

    value: float | None
    """The query's number; None when there is none (no data, or `problem`)."""
    problem: str = ""
    """Why the answer is unusable (unreachable, an error, not one number); "" when it is usable."""


def render_query(query: str, variables: Mapping[str, str]) -> str:
    """`query` with each `{{ name }}` replaced by `variables[name]`; KeyError names one it lacks."""
    return _VARIABLE.sub(lambda found: variables[found.group(1)], query)


async def query_prometheus(
    address: str, query: str, *, timeout_seconds: float, client: httpx.AsyncClient | None = None
) -> QueryAnswer:
    """The number `query` gives now at the Prometheus server at `address` (its base URL).

    `timeout_seconds` bounds the request as a whole (connect to last byte). A scalar, or a vector
    of one sample, is a number; an empty vector, or NaN (a ratio of nothing to nothing), is no
    data. A `client` given is used and left open; otherwise one is made and closed.
    """
    if client is None:
        async with pod_client() as own:
            return await query_prometheus(address, query, timeout_seconds=timeout_seconds, client=own)
    url = address.rstrip("/") + "/api/v1/query"
    try:
        async with (
            asyncio.timeout(timeout_seconds),
            client.stream(
                "GET",
                url,
                params={"query": query},
                headers={"Accept-Encoding": "identity", "Accept": "application/json"},
                timeout=timeout_seconds,
            ) as response,
        ):
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            answer = await read_bounded(response)
    except (TimeoutError, httpx.TimeoutException):
        return _problem(f"no answer from Prometheus within {timeout_seconds:g}s")
    except (httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as error:
        return _problem(_failure(error))
    if encoding not in ("", "identity"):
        return _problem("Prometheus answered with a compressed body, which turnout did not ask for")
    if not answer.complete:
        return _problem(f"Prometheus answered with more than {MAX_BODY_BYTES // 1024} KiB, more than one number needs")
    try:
        body = json.loads(answer.body)
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        return _problem(f"Prometheus answered {answer.status_code} with something other than a JSON object")
    if answer.status_code != 200 or body.get("status") != "success":
        return _problem(f"Prometheus answered {answer.status_code}" + _error_of(body))
    return _number(body.get("data"))


def _number(data: Any) -> QueryAnswer:
    """The one number of a successful answer's `data`."""
    kind = data.get("resultType") if isinstance(data, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if kind == "scalar":
        return _sample_value(result)
    if kind == "vector" and isinstance(result, list):
        if not result:
            return QueryAnswer(None)
        if len(result) > 1:
            return _problem(f"the query gave {len(result)} series, not one number: aggregate them, e.g. with sum()")
        sample = result[0]
        return _sample_value(sample.get("value") if isinstance(sample, dict) else None)
    if kind in ("matrix", "string"):
        return _problem(f"the query gave a {kind}, not one number: ask for a scalar or an instant vector")
    return _problem("Prometheus answered success without a result turnout can read")


def _sample_value(pair: Any) -> QueryAnswer:
    """The number of a `[time, "value"]` pair; NaN is no data."""
    if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str):
        try:
            value = float(pair[1])
        except ValueError:
            pass
        else:
            return QueryAnswer(None) if math.isnan(value) else QueryAnswer(value)
    return _problem("Prometheus answered a sample that is not [time, value]")


def _error_of(body: dict[str, Any]) -> str:
    """ ": <errorType>: <error>" from Prometheus' error answer, cut and on one line; "" without one."""
    parts = [body.get(key) for key in ("errorType", "error")]
    text = ": ".join(part for part in parts if isinstance(part, str) and part)
    text = " ".join(_CONTROL.sub(" ", text).split())
    if not text:
        return ""
    return ": " + (text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + "…")


def _failure(error: Exception) -> str:
    """A fixed sentence for a request that got no answer; the error's own text is never shown."""
    if isinstance(error, httpx.ConnectError):
        if connect_cause(error, ConnectionRefusedError):
            return "Prometheus refused the connection"
        return "cannot connect to Prometheus"
    if isinstance(error, httpx.RemoteProtocolError):
        return "Prometheus' answer was not valid HTTP"
    if isinstance(error, httpx.ReadError):
        return "the connection to Prometheus broke while reading the answer"
    # The class name says what kind of failure it was, and cannot hold what was sent.
    return f"the request to Prometheus failed ({type(error).__name__})"


def _problem(message: str) -> QueryAnswer:
    return QueryAnswer(None, message)
