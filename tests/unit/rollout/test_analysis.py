"""judge(): the verdict on a canary step, rule by rule, by named scenario."""

from __future__ import annotations

from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnout.api.spec import AnalysisMetric
from turnout.api.traffic import Histogram, TrafficCounters
from turnout.rollout.analysis import Outcome, judge
from turnout.rollout.observed import MetricReading

BOUNDS = (1.0, 2.0, 4.0)


def served(requests: int, errors: int = 0, *, seconds_bucket: int | None = 0) -> TrafficCounters:
    """`requests` requests, `errors` of them 5xx, every one ended (and its first token came) in bucket
    `seconds_bucket` of BOUNDS (0: up to 1 s, 1: 1-2 s, 2: 2-4 s); None: the engine measured nothing."""
    per_bucket = [0] * (len(BOUNDS) + 1)
    if seconds_bucket is not None:
        per_bucket[seconds_bucket] = requests
    latency = Histogram(le=BOUNDS, counts=tuple(accumulate(per_bucket)), sum=float(requests))
    return TrafficCounters(requests=requests, errors=errors, latency=latency, ttft=latency)


LIMITS = {"max_error_ratio": 0.05, "max_latency_ratio": 1.5, "min_requests": 20}


def test_too_little_canary_traffic_waits_and_says_how_much() -> None:
    verdict = judge(served(12, errors=12), served(500), **LIMITS)
    assert verdict.outcome is Outcome.WAIT
    assert verdict.message == "12/20 requests on the canary so far"


def test_no_canary_traffic_waits_even_without_a_minimum() -> None:
    verdict = judge(served(0), served(500), max_error_ratio=0.05, max_latency_ratio=None, min_requests=0)
    assert (verdict.outcome, verdict.message) == (Outcome.WAIT, "0/1 requests on the canary so far")


def test_a_canary_answering_5xx_above_the_limit_fails() -> None:
    verdict = judge(served(200, errors=42), served(500), **LIMITS)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.message == "canary 5xx 21.0% of 200 requests > 5.0% (analysis.maxErrorRatio)"


def test_a_canary_at_the_error_limit_passes() -> None:
    verdict = judge(served(200, errors=10), served(500), **LIMITS)
    assert verdict.outcome is Outcome.PASS
    assert verdict.message.startswith("canary 5xx 5.0% of 200 requests <= 5.0%; ")


@pytest.mark.parametrize(
    ("errors", "max_error_ratio", "says"),
    [
        (1004, 0.05, "canary 5xx 5.02% of 20000 requests > 5.0%"),
        (1, 0.0, "canary 5xx 0.01% of 20000 requests > 0.0%"),
        (1500, 0.0725, "canary 5xx 7.5% of 20000 requests > 7.25%"),
    ],
    ids=["just-above", "any-error", "a-limit-with-more-decimals"],
)
def test_numbers_are_written_as_precisely_as_it_takes_to_tell_them_apart(
    errors: int, max_error_ratio: float, says: str
) -> None:
    verdict = judge(
        served(20000, errors=errors), None, max_error_ratio=max_error_ratio, max_latency_ratio=None, min_requests=20
    )
    assert verdict.outcome is Outcome.FAIL
    assert verdict.message == f"{says} (analysis.maxErrorRatio)"


def test_a_canary_much_slower_than_stable_fails() -> None:
    # p95: 2 s + 0.95 · 2 s on the canary, 1 s + 0.95 · 1 s on the stable color.
    verdict = judge(served(200, seconds_bucket=2), served(500, seconds_bucket=1), **LIMITS)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.message == "canary p95 latency 3.90 s vs stable 1.95 s (ratio 2.00 > 1.5, analysis.maxLatencyRatio)"
    assert verdict.latency_ratio == pytest.approx(2.0)


def test_both_failures_are_named() -> None:
    verdict = judge(served(200, errors=42, seconds_bucket=2), served(500, seconds_bucket=1), **LIMITS)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.message == (
        "canary 5xx 21.0% of 200 requests > 5.0% (analysis.maxErrorRatio); "
        "canary p95 latency 3.90 s vs stable 1.95 s (ratio 2.00 > 1.5, analysis.maxLatencyRatio)"
    )


def test_a_canary_as_good_as_stable_passes_with_its_numbers() -> None:
    verdict = judge(served(200, errors=1, seconds_bucket=1), served(500, errors=2, seconds_bucket=1), **LIMITS)
    assert verdict.outcome is Outcome.PASS
    assert verdict.message == (
        "canary 5xx 0.5% of 200 requests <= 5.0%; canary p95 latency 1.95 s vs stable 1.95 s (ratio 1.00 <= 1.5)"
    )


@pytest.mark.parametrize(
    ("stable", "canary", "says"),
    [
        (served(3, seconds_bucket=0), served(200), "3/20 requests on the stable color"),
        (None, served(200), "no traffic of the stable color"),
        (served(500), served(200, seconds_bucket=None), "the canary's engine measured no latency"),
        (served(500, seconds_bucket=None), served(200), "the stable color's engine measured no latency"),
    ],
    ids=["stable-too-quiet", "no-stable", "canary-without-latency", "stable-without-latency"],
)
def test_latency_that_cannot_be_compared_is_judged_without_and_said(
    stable: TrafficCounters | None, canary: TrafficCounters, says: str
) -> None:
    verdict = judge(canary, stable, **LIMITS)
    assert verdict.outcome is Outcome.PASS
    assert verdict.message == f"canary 5xx 0.0% of 200 requests <= 5.0%; latency not compared: {says}"
    assert verdict.latency_ratio is None


def test_the_errors_still_fail_a_canary_whose_latency_is_not_compared() -> None:
    verdict = judge(served(200, errors=42), served(3), **LIMITS)
    assert verdict.outcome is Outcome.FAIL
    assert verdict.message == "canary 5xx 21.0% of 200 requests > 5.0% (analysis.maxErrorRatio)"


def test_without_limits_enough_traffic_passes() -> None:
    verdict = judge(served(200, errors=200), served(500), max_error_ratio=None, max_latency_ratio=None, min_requests=20)
    assert (verdict.outcome, verdict.message) == (Outcome.PASS, "200 requests on the canary, no limit to check")


def test_the_verdict_carries_both_colors_numbers() -> None:
    verdict = judge(served(200, errors=1, seconds_bucket=1), served(500, seconds_bucket=0), **LIMITS)
    canary, stable = verdict.canary, verdict.stable
    assert stable is not None
    assert (canary.requests, canary.error_ratio, stable.requests, stable.error_ratio) == (200, 0.005, 500, 0.0)
    assert canary.p95_latency_seconds == pytest.approx(1.95)
    assert canary.p95_ttft_seconds == pytest.approx(1.95)
    assert stable.p95_latency_seconds == pytest.approx(0.95)
    assert verdict.latency_ratio == pytest.approx(1.95 / 0.95)
    assert judge(served(200), None, **LIMITS).stable is None


@given(
    requests=st.integers(0, 1000),
    error_share=st.floats(0, 1),
    min_requests=st.integers(0, 1000),
    max_error_ratio=st.none() | st.floats(0, 1),
    max_latency_ratio=st.none() | st.floats(0.1, 10),
)
def test_too_little_traffic_is_never_a_pass_and_enough_is_never_a_wait(
    requests: int, error_share: float, min_requests: int, max_error_ratio: float | None, max_latency_ratio: float | None
) -> None:
    canary = served(requests, errors=int(requests * error_share), seconds_bucket=1)
    verdict = judge(
        canary,
        served(500),
        max_error_ratio=max_error_ratio,
        max_latency_ratio=max_latency_ratio,
        min_requests=min_requests,
    )
    assert (verdict.outcome is Outcome.WAIT) == (requests < max(min_requests, 1))


# -- the team's Prometheus metrics ------------------------------------------------------------


def metric(name: str = "errors", **bounds: float) -> AnalysisMetric:
    return AnalysisMetric.model_validate(
        {"name": name, "prometheus": {"address": "http://prom:9090", "query": "x"}, "thresholdRange": bounds}
    )


def test_a_metric_above_its_max_fails_with_its_value_and_range() -> None:
    verdict = judge(served(100), served(100), **LIMITS, metrics=[metric(max=0.05)], readings=[reading(0.2)])
    assert verdict.outcome is Outcome.FAIL
    assert verdict.message == "metric errors = 0.2 > max 0.05 (thresholdRange of analysis.metrics)"


def test_a_metric_below_its_min_fails() -> None:
    verdict = judge(served(100), served(100), **LIMITS, metrics=[metric(min=10)], readings=[reading(9.5)])
    assert (verdict.outcome, verdict.message) == (
        Outcome.FAIL,
        "metric errors = 9.5 < min 10 (thresholdRange of analysis.metrics)",
    )


def test_a_value_just_past_its_bound_is_not_shown_as_the_bound() -> None:
    verdict = judge(served(100), served(100), **LIMITS, metrics=[metric(max=0.05)], readings=[reading(0.0500001)])
    assert verdict.message.startswith("metric errors = 0.0500001 > max 0.05")


def test_metrics_in_range_pass_beside_the_traffic() -> None:
    verdict = judge(
        served(100),
        served(100),
        **LIMITS,
        metrics=[metric(max=0.05), metric("p99", min=0, max=2)],
        readings=[reading(0.01), reading(1.5, "p99")],
    )
    assert verdict.outcome is Outcome.PASS
    assert "metric errors = 0.01 within [, 0.05]; metric p99 = 1.5 within [0, 2]" in verdict.message


def test_a_metric_without_data_waits_like_too_little_traffic() -> None:
    verdict = judge(served(100), served(100), **LIMITS, metrics=[metric(max=0.05)], readings=[reading(None)])
    assert verdict.outcome is Outcome.WAIT
    assert verdict.message.startswith("metric errors: no data from Prometheus yet")


def test_a_metric_not_read_this_round_waits() -> None:
    verdict = judge(served(100), served(100), **LIMITS, metrics=[metric(max=0.05)], readings=[])
    assert verdict.outcome is Outcome.WAIT


def test_a_metric_out_of_range_fails_even_when_another_has_no_data() -> None:
    verdict = judge(
        served(100),
        served(100),
        **LIMITS,
        metrics=[metric(max=0.05), metric("p99", max=2)],
        readings=[reading(None), reading(3, "p99")],
    )
    assert verdict.outcome is Outcome.FAIL
    assert verdict.message == "metric p99 = 3 > max 2 (thresholdRange of analysis.metrics)"


def test_a_prometheus_that_cannot_answer_fails_even_before_enough_traffic() -> None:
    broken = MetricReading("errors", None, "Prometheus refused the connection")
    verdict = judge(served(3), served(100), **LIMITS, metrics=[metric(max=0.05)], readings=[broken])
    assert (verdict.outcome, verdict.message) == (Outcome.FAIL, "metric errors: Prometheus refused the connection")


def test_metrics_are_not_judged_before_enough_traffic() -> None:
    verdict = judge(served(3), served(100), **LIMITS, metrics=[metric(max=0.05)], readings=[reading(0.9)])
    assert (verdict.outcome, verdict.message) == (Outcome.WAIT, "3/20 requests on the canary so far")


def reading(value: float | None, name: str = "errors") -> MetricReading:
    return MetricReading(name, value)
