"""TrafficCounters: pods summed, windows taken, quantiles estimated as Prometheus estimates them."""

from __future__ import annotations

import json
import math
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from turnout.api.traffic import MAX_BUCKETS, Histogram, TrafficCounters

# vLLM's e2e request latency bounds (vllm/v1/metrics/buckets.py, REQUEST_LATENCY_BUCKETS).
VLLM_LATENCY_BOUNDS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0)


def histogram(bounds: tuple[float, ...], per_bucket: list[int], total: float | None = None) -> Histogram:
    """A histogram from the count of each bucket (the last one is +Inf's own)."""
    counts = tuple(accumulate(per_bucket))
    return Histogram(le=bounds, counts=counts, sum=sum(per_bucket) if total is None else total)


@st.composite
def histograms(draw: st.DrawFn, bounds: tuple[float, ...] = VLLM_LATENCY_BOUNDS) -> Histogram:
    per_bucket = draw(st.lists(st.integers(0, 10_000), min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    return histogram(bounds, per_bucket, draw(st.floats(0, 1e6)))


@st.composite
def counters(draw: st.DrawFn) -> TrafficCounters:
    requests = draw(st.integers(0, 10**9))
    return TrafficCounters(
        requests=requests,
        errors=draw(st.integers(0, requests)),
        latency=draw(histograms()),
        ttft=draw(histograms((0.001, 0.01, 0.1, 1.0))),
    )


def assert_same(one: TrafficCounters | None, other: TrafficCounters) -> None:
    """Equal, the sums of seconds up to floating-point rounding."""
    assert one is not None
    assert (one.requests, one.errors) == (other.requests, other.errors)
    for mine, theirs in ((one.latency, other.latency), (one.ttft, other.ttft)):
        assert (mine.le, mine.counts) == (theirs.le, theirs.counts)
        assert mine.sum == pytest.approx(theirs.sum, rel=1e-9, abs=1e-6)


# Sums and windows


@given(counters(), counters())
def test_the_window_after_a_reading_is_what_came_after_it(before: TrafficCounters, added: TrafficCounters) -> None:
    assert_same(before.plus(added).since(before), added)


@given(counters(), counters())
def test_two_pods_add_up_in_either_order(one: TrafficCounters, other: TrafficCounters) -> None:
    assert_same(one.plus(other), other.plus(one))


@given(counters())
def test_no_traffic_is_the_empty_window_and_adds_nothing(reading: TrafficCounters) -> None:
    nothing = reading.since(reading)
    assert nothing is not None
    assert (nothing.requests, nothing.errors, nothing.latency.count, nothing.ttft.count) == (0, 0, 0, 0)
    assert_same(reading.plus(TrafficCounters()), reading)


@pytest.mark.parametrize(
    "restarted",
    [
        {"requests": 99},
        {"errors": 0},
        {"latency": histogram((0.5, 1.0), [4, 0, 0])},
        {"ttft": histogram((0.5, 1.0), [1, 0, 0])},
    ],
    ids=["requests", "errors", "latency", "ttft"],
)
def test_a_counter_that_went_down_restarts_the_window(restarted: dict[str, object]) -> None:
    before = TrafficCounters(
        requests=100, errors=2, latency=histogram((0.5, 1.0), [5, 0, 0]), ttft=histogram((0.5, 1.0), [2, 0, 0])
    )
    assert before.model_copy(update={"requests": 120}).since(before) is not None
    assert before.model_copy(update=restarted).since(before) is None


def test_observations_moving_down_a_bucket_mean_other_pods() -> None:
    # As many observations in all, but fewer at or below 1 s than before: not the same pods.
    before = histogram((0.5, 1.0), [0, 5, 0])
    assert histogram((0.5, 1.0), [3, 0, 2]).since(before) is None


def test_pods_with_other_bounds_keep_the_bounds_they_share() -> None:
    one = histogram((0.5, 1.0, 2.0), [1, 2, 3, 4])
    other = histogram((0.5, 2.0, 4.0), [10, 20, 30, 40])
    both = one.plus(other)
    assert (both.le, both.counts) == ((0.5, 2.0), (11, 36, 110))
    assert both.count == one.count + other.count


def test_a_pod_without_observations_keeps_every_bound_of_the_other() -> None:
    served = histogram((0.5, 1.0), [1, 2, 3])
    idle = Histogram(le=(0.25,), counts=(0, 0))
    assert idle.plus(served) == served
    assert served.plus(idle) == served
    assert served.since(idle) == served


def test_error_ratio_is_the_share_of_5xx_and_none_without_requests() -> None:
    assert TrafficCounters(requests=200, errors=42).error_ratio == 0.21
    assert TrafficCounters().error_ratio is None


# Quantiles


def test_quantiles_are_prometheus_histogram_quantile() -> None:
    # prometheus/promql/testdata/histograms.test, `testhistogram_bucket{start="positive"}`.
    positive = histogram((0.1, 0.2, 1.0), [50, 20, 40, 10])
    assert positive.quantile(0.5) == pytest.approx(0.15)
    assert positive.quantile(0.8) == pytest.approx(0.72)
    assert positive.quantile(0.2) == pytest.approx(0.1 * 24 / 50)  # the first bucket starts at 0
    assert positive.quantile(1) == 1.0  # in the +Inf bucket: the highest finite bound
    # `start="negative"`: a quantile in a first bucket with a bound at or below 0 is that bound.
    assert histogram((-0.2, -0.1, 0.3), [10, 10, 0, 10]).quantile(0.2) == -0.2


def test_p95_of_a_vllm_latency_histogram() -> None:
    # 100 requests: 90 under 0.3 s, 6 between 1.5 and 2 s, 4 between 2 and 2.5 s.
    latency = histogram((0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5), [90, 0, 0, 0, 0, 6, 4, 0])
    assert latency.quantile(0.95) == pytest.approx(1.5 + 0.5 * 5 / 6)
    assert latency.quantile(0.99) == pytest.approx(2.0 + 0.5 * 3 / 4)


def test_no_observation_or_no_finite_bound_has_no_quantile() -> None:
    assert Histogram().quantile(0.95) is None
    assert Histogram(le=(0.5,), counts=(0, 0)).quantile(0.5) is None
    assert Histogram(le=(), counts=(7,), sum=3.0).quantile(0.5) is None


def test_q_is_a_share() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram((1.0,), [1, 0]).quantile(95)


@given(histograms(), st.floats(0, 1), st.floats(0, 1))
def test_a_higher_q_never_has_a_lower_quantile(latency: Histogram, q: float, r: float) -> None:
    low, high = latency.quantile(min(q, r)), latency.quantile(max(q, r))
    if latency.count == 0:
        assert (low, high) == (None, None)
        return
    assert low is not None
    assert high is not None
    assert low <= high


@given(histograms(), st.floats(0, 1))
def test_a_quantile_lies_in_the_bucket_that_holds_its_rank(latency: Histogram, q: float) -> None:
    found = latency.quantile(q)
    if latency.count == 0:
        assert found is None
        return
    assert found is not None
    rank = q * latency.count
    # The bucket: from the highest bound below the rank to the lowest at or above it (+Inf answers the highest bound).
    above = [bound for bound, count in zip(latency.le, latency.counts, strict=False) if count >= max(rank, 1)]
    below = [bound for bound, count in zip(latency.le, latency.counts, strict=False) if count < max(rank, 1)]
    assert (below[-1] if below else 0.0) <= found <= (above[0] if above else latency.le[-1])


# The model as the status keeps it


@given(counters())
def test_json_round_trip_by_alias(reading: TrafficCounters) -> None:
    text = reading.model_dump_json(by_alias=True)
    assert TrafficCounters.model_validate(json.loads(text)) == reading


def test_the_json_is_plain_lists_and_numbers() -> None:
    reading = TrafficCounters(requests=3, errors=1, latency=histogram((0.3, 0.5), [1, 1, 0], 0.6))
    assert reading.model_dump(by_alias=True, mode="json") == {
        "requests": 3,
        "errors": 1,
        "latency": {"le": [0.3, 0.5], "counts": [1, 2, 2], "sum": 0.6},
        "ttft": {"le": [], "counts": [0], "sum": 0.0},
    }


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"le": (1.0, 0.5), "counts": (0, 0, 0)}, "bounds must increase"),
        ({"le": (0.5, 1.0), "counts": (2, 1, 2)}, "must not decrease"),
        ({"le": (0.5,), "counts": (1,)}, "1 bounds need 2 counts"),
        ({"le": (math.nan,), "counts": (0, 0)}, "finite number"),
        ({"le": tuple(float(i) for i in range(MAX_BUCKETS + 1)), "counts": (0,) * (MAX_BUCKETS + 2)}, "at most 64"),
        ({"counts": (2**53 + 1,)}, "less than or equal to 9007199254740992"),
        ({"counts": (1,), "sum": -1.0}, "greater than or equal to 0"),
    ],
    ids=[
        "bounds-order",
        "not-cumulative",
        "no-inf-count",
        "nan-bound",
        "too-many-buckets",
        "huge-count",
        "negative-sum",
    ],
)
def test_a_histogram_that_cannot_be_is_refused(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Histogram.model_validate(fields)


def test_more_errors_than_requests_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"errors \(3\) are some of the requests \(2\)"):
        TrafficCounters(requests=2, errors=3)
