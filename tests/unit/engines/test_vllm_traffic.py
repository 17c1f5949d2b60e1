"""vLLM's `/metrics` read as TrafficCounters: the text vLLM 0.32.0's own metric code serves (vllm_metrics.txt)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.engines.vllm_metrics import VLLM_METRICS, VLLM_SCENARIO
from turnout.engines.vllm import E2E_LATENCY, vllm_traffic


def test_requests_are_the_inference_handlers_and_errors_their_5xx() -> None:
    traffic = vllm_traffic(VLLM_METRICS)
    # Chat 5 (one 4xx, one 5xx), completions 2 (one 5xx), embeddings 1; /v1/models, /tokenize, /health aside.
    assert (traffic.requests, traffic.errors) == (8, 2)
    assert traffic.error_ratio == 0.25


def test_latency_is_the_engines_e2e_histogram_with_vllms_bounds() -> None:
    latency = vllm_traffic(VLLM_METRICS).latency
    assert latency.le[:8] == (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0)
    assert len(latency.le) == 21
    assert latency.counts[:8] == (2, 3, 3, 4, 5, 5, 6, 7)
    assert latency.count == len(VLLM_SCENARIO["finished"])
    assert latency.sum == pytest.approx(sum(e2e for e2e, _ in VLLM_SCENARIO["finished"]))
    assert latency.quantile(0.95) == pytest.approx(2.5 + 2.5 * (0.95 * 7 - 6))


def test_ttft_is_the_engines_time_to_first_token_histogram() -> None:
    ttft = vllm_traffic(VLLM_METRICS).ttft
    assert ttft.le[:3] == (0.001, 0.005, 0.01)
    assert ttft.count == len(VLLM_SCENARIO["first_tokens"])
    assert ttft.sum == pytest.approx(sum(VLLM_SCENARIO["first_tokens"]))


def test_a_vllm_that_served_nothing_yet_reads_as_zero() -> None:
    # Before any request the instrumentator's counter has no series at all.
    idle = "\n".join(line for line in VLLM_METRICS.splitlines() if not line.startswith("http_requests_total"))
    traffic = vllm_traffic(idle)
    assert (traffic.requests, traffic.errors) == (0, 0)


def test_two_engines_of_a_data_parallel_pod_add_up() -> None:
    second = [
        line.replace('engine="0"', 'engine="1"') for line in VLLM_METRICS.splitlines() if line.startswith(E2E_LATENCY)
    ]
    both = vllm_traffic(VLLM_METRICS + "\n".join(second) + "\n").latency
    assert both.count == 2 * len(VLLM_SCENARIO["finished"])


CHAT_5XX = 'http_requests_total{handler="/v1/chat/completions",method="POST",status="5xx"} '
E2E_INF = f'{E2E_LATENCY}_bucket{{engine="0",le="+Inf",model_name="chat"}} '
E2E_FIRST = f'{E2E_LATENCY}_bucket{{engine="0",le="0.3",model_name="chat"}} '


@pytest.mark.parametrize(
    ("replace", "says"),
    [
        ((CHAT_5XX + "1.0", CHAT_5XX + "1.5"), r"http_requests_total is not a count .*: 1\.5"),
        ((CHAT_5XX + "1.0", CHAT_5XX + "-1.0"), r"http_requests_total is not a count .*: -1"),
        ((CHAT_5XX + "1.0", CHAT_5XX + "NaN"), "http_requests_total is not a count .*: nan"),
        ((CHAT_5XX + "1.0", CHAT_5XX + "1e300"), "http_requests_total is not a count .*: 1e"),
        ((E2E_INF + "7.0", E2E_INF + "6.0"), f"histogram {E2E_LATENCY}: .*must not decrease"),
        ((E2E_FIRST, E2E_FIRST.replace("0.3", "zero")), "bucket bound that is no number"),
        ((CHAT_5XX + "1.0", CHAT_5XX + "1.0 junk"), "not Prometheus text"),
    ],
    ids=["fraction", "negative", "nan", "huge", "not-cumulative", "bad-bound", "broken-line"],
)
def test_what_vllm_never_serves_is_refused_saying_what(replace: tuple[str, str], says: str) -> None:
    assert replace[0] in VLLM_METRICS
    with pytest.raises(ValueError, match=says):
        vllm_traffic(VLLM_METRICS.replace(*replace, 1))


def test_a_histogram_without_its_inf_bucket_is_refused() -> None:
    text = "\n".join(
        line for line in VLLM_METRICS.splitlines() if not line.startswith(f'{E2E_LATENCY}_bucket{{engine="0",le="+Inf"')
    )
    with pytest.raises(ValueError, match=f"histogram {E2E_LATENCY} has no \\+Inf bucket"):
        vllm_traffic(text)


def test_a_histogram_with_more_buckets_than_a_status_keeps_is_refused() -> None:
    buckets = "".join(f'{E2E_LATENCY}_bucket{{le="{i}"}} 0\n' for i in range(100))
    with pytest.raises(ValueError, match="has 100 buckets; turnout reads at most 64"):
        vllm_traffic(f'{buckets}{E2E_LATENCY}_bucket{{le="+Inf"}} 0\n')


@given(st.text(max_size=300))
def test_any_text_is_counters_or_a_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        vllm_traffic(text)
