"""Asking the team's Prometheus one query: a number, no data, or a bounded sentence saying why not."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest

from turnout.checks.prometheus import QueryAnswer, query_prometheus, render_query
from turnout.engines.probe import MAX_BODY_BYTES

ADDRESS = "http://prometheus.monitoring:9090"
QUERY = 'sum(rate(http_requests_total{status="5xx"}[30s]))'


def ask(answer: Any, address: str = ADDRESS, timeout_seconds: float = 2) -> QueryAnswer:
    """What `query_prometheus` makes of a Prometheus answering `answer(request)` (an httpx.Response)."""

    async def scenario() -> QueryAnswer:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await query_prometheus(address, QUERY, timeout_seconds=timeout_seconds, client=client)

    return asyncio.run(scenario())


def success(result_type: str, result: Any) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "success", "data": {"resultType": result_type, "result": result}})

    return answer


def sample(value: str, **labels: str) -> dict[str, Any]:
    return {"metric": labels, "value": [1764350000.123, value]}


def test_the_query_is_an_instant_query_of_the_http_api() -> None:
    asked: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return success("vector", [sample("0.25")])(request)

    assert ask(answer, address=ADDRESS + "/prom/") == QueryAnswer(0.25)
    (request,) = asked
    assert (request.method, request.url.path, request.url.params["query"]) == ("GET", "/prom/api/v1/query", QUERY)


@pytest.mark.parametrize(
    ("result_type", "result", "expected"),
    [
        pytest.param("vector", [sample("0.2", job="chat")], QueryAnswer(0.2), id="a vector of one sample"),
        pytest.param("scalar", [1764350000.1, "3"], QueryAnswer(3.0), id="a scalar"),
        pytest.param("vector", [], QueryAnswer(None), id="an empty vector is no data"),
        pytest.param("vector", [sample("NaN")], QueryAnswer(None), id="NaN (0/0) is no data"),
        pytest.param("scalar", [1764350000.1, "+Inf"], QueryAnswer(float("inf")), id="infinity is a number"),
    ],
)
def test_an_answer_of_one_number_or_none(result_type: str, result: Any, expected: QueryAnswer) -> None:
    assert ask(success(result_type, result)) == expected


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        pytest.param(
            success("vector", [sample("1", pod="a"), sample("2", pod="b")]),
            "the query gave 2 series, not one number: aggregate them, e.g. with sum()",
            id="two series",
        ),
        pytest.param(
            success("matrix", [{"metric": {}, "values": [[1, "1"]]}]),
            "the query gave a matrix, not one number: ask for a scalar or an instant vector",
            id="a range vector",
        ),
        pytest.param(
            success("vector", [{"metric": {}, "value": [1, 2]}]),
            "Prometheus answered a sample that is not [time, value]",
            id="a value that is no string",
        ),
        pytest.param(
            lambda request: httpx.Response(
                400,
                json={"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"\nat 3'},
            ),
            'Prometheus answered 400: bad_data: parse error: unexpected "}" at 3',
            id="an error answer, on one line",
        ),
        pytest.param(
            lambda request: httpx.Response(503, text="Service Unavailable"),
            "Prometheus answered 503 with something other than a JSON object",
            id="a proxy's error page",
        ),
        pytest.param(
            lambda request: httpx.Response(200, content=b"[" * 100_000),
            "Prometheus answered 200 with something other than a JSON object",
            id="nested too deep",
        ),
    ],
)
def test_an_answer_turnout_cannot_use_is_a_problem(answer: Any, problem: str) -> None:
    assert ask(answer) == QueryAnswer(None, problem)


def test_prometheus_own_error_text_is_cut_short() -> None:
    error = {"status": "error", "errorType": "execution", "error": "x" * 10_000}
    found = ask(lambda request: httpx.Response(422, json=error))
    assert found.problem == "Prometheus answered 422: execution: " + "x" * (200 - len("execution: ")) + "…"


def test_a_huge_answer_is_not_read_past_the_bound() -> None:
    huge = json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": []}, "pad": "x" * MAX_BODY_BYTES}
    )
    found = ask(lambda request: httpx.Response(200, content=huge.encode()))
    assert found == QueryAnswer(None, "Prometheus answered with more than 1024 KiB, more than one number needs")


def test_a_prometheus_that_does_not_answer_in_time_is_a_problem() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200)

    assert ask(answer, timeout_seconds=0.2) == QueryAnswer(None, "no answer from Prometheus within 0.2s")


def test_an_unreachable_prometheus_is_a_sentence_without_the_client_s_error() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    found = asyncio.run(query_prometheus(f"http://127.0.0.1:{port}", QUERY, timeout_seconds=2))
    assert found == QueryAnswer(None, "Prometheus refused the connection")


def test_variables_are_filled_in_with_or_without_spaces() -> None:
    query = 'x{ns="{{namespace}}",rev="{{ canaryRevision }}"}[{{  interval }}]'
    filled = render_query(query, {"namespace": "ml", "canaryRevision": "abc123", "interval": "10s"})
    assert filled == 'x{ns="ml",rev="abc123"}[10s]'
