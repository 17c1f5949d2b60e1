"""Scraping a color: every Ready pod's /metrics at once, summed; a pod that cannot be read leaves no sample."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.unit.engines.vllm_metrics import VLLM_METRICS
from turnout.checks import CheckTarget, TrafficScrape, scrape_color
from turnout.engines.ollama import OLLAMA
from turnout.engines.probe import MAX_BODY_BYTES
from turnout.engines.vllm import VLLM, vllm_traffic

PODS = [CheckTarget("chat-green-a", "10.0.0.7", 8000), CheckTarget("chat-green-b", "10.0.0.8", 8000)]
Answer = Callable[[httpx.Request], Awaitable[httpx.Response]]


def scrape(answer: Answer, targets: list[CheckTarget] = PODS, timeout_seconds: float = 2) -> TrafficScrape:
    async def scenario() -> TrafficScrape:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            return await scrape_color(VLLM, targets, timeout_seconds=timeout_seconds, client=client)

    return asyncio.run(scenario())


def by_pod(**answers: httpx.Response) -> Answer:
    """Each pod (by the last digits of its IP, `a7`, `b8`) answers as given; vLLM's metrics otherwise."""

    async def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/metrics"
        given = answers.get(f"ip{request.url.host.rsplit('.', 1)[-1]}")
        return given or httpx.Response(200, text=VLLM_METRICS)

    return answer


def test_a_color_is_the_sum_of_its_pods() -> None:
    one = vllm_traffic(VLLM_METRICS)
    found = scrape(by_pod())
    assert found.counters == one.plus(one)
    assert (found.pods, found.failures, found.message) == (2, (), "")


def test_pods_are_asked_at_once_without_the_api_key() -> None:
    both_asked = asyncio.Event()
    asked: list[httpx.Request] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        # Neither pod answers before the other is asked: one after the other, the first would time out.
        asked.append(request)
        if len(asked) == len(PODS):
            both_asked.set()
        await both_asked.wait()
        return httpx.Response(200, text=VLLM_METRICS)

    assert scrape(answer, timeout_seconds=5).counters is not None
    assert sorted(str(request.url) for request in asked) == [
        "http://10.0.0.7:8000/metrics",
        "http://10.0.0.8:8000/metrics",
    ]
    assert all("Authorization" not in request.headers for request in asked)


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (httpx.Response(503), "/metrics answered 503"),
        (
            httpx.Response(200, text="http_requests_total{"),
            "/metrics is not metrics turnout can read: not Prometheus text",
        ),
        (
            httpx.Response(200, text=VLLM_METRICS.replace('status="5xx"} 1.0', 'status="5xx"} 0.5', 1)),
            "/metrics is not metrics turnout can read: http_requests_total is not a count",
        ),
        (httpx.Response(200, content=b"\xff\xfe metrics"), "/metrics is not metrics turnout can read: 'utf-8' codec"),
        (httpx.Response(200, content=b"#" * (MAX_BODY_BYTES + 1)), "/metrics answered with more than 1024 KiB"),
    ],
    ids=["5xx", "not-prometheus", "not-a-count", "not-utf8", "too-long"],
)
def test_a_pod_that_cannot_be_read_leaves_the_color_without_a_sample(answer: httpx.Response, says: str) -> None:
    found = scrape(by_pod(ip8=answer))
    assert found.counters is None
    assert [failure.pod for failure in found.failures] == ["chat-green-b"]
    assert found.message.startswith(f"pod chat-green-b (10.0.0.8): {says}"), found.message


def test_a_pod_that_does_not_answer_in_time_is_named() -> None:
    async def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    found = scrape(answer, timeout_seconds=1.5)
    assert found.counters is None
    assert found.message == "pod chat-green-a (10.0.0.7): /metrics: no answer within 1.5s (and 1 more pod)"


def test_a_color_without_ready_pods_has_no_sample() -> None:
    found = scrape(by_pod(), targets=[])
    assert (found.counters, found.pods, found.message) == (None, 0, "no Ready pods to scrape")


def test_an_engine_without_metrics_is_not_scraped() -> None:
    with pytest.raises(ValueError, match="serves no metrics"):
        asyncio.run(scrape_color(OLLAMA, PODS, timeout_seconds=1))
