"""A run's samples summed up: counts, rates, percentiles as numpy computes them, where tokens came from."""

from __future__ import annotations

import pytest

from turnout.api.benchmark import BenchmarkResult, TokenCount
from turnout.benchmark.results import ErrorKind, RequestSample, http_error, percentile, summarise


def answered(ttft: float, latency: float, tokens: int = 10, usage: bool = True) -> RequestSample:
    return RequestSample(ttft_seconds=ttft, latency_seconds=latency, output_tokens=tokens, tokens_from_usage=usage)


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        # numpy.percentile(values, percent) with its default, linear interpolation.
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 95, 3.85),
        ([4.0, 1.0, 3.0, 2.0], 95, 3.85),
        ([7.0], 95, 7.0),
        ([0.0, 10.0], 0, 0.0),
        ([0.0, 10.0], 100, 10.0),
        (list(map(float, range(1, 101))), 95, 95.05),
    ],
)
def test_percentiles_interpolate_like_numpy(values: list[float], percent: float, expected: float) -> None:
    assert percentile(values, percent) == pytest.approx(expected)


def test_no_values_have_no_percentile() -> None:
    assert percentile([], 50) is None


def test_a_run_sums_up_answers_and_errors_by_kind() -> None:
    samples = [
        answered(0.1, 1.0, tokens=20),
        answered(0.2, 2.0, tokens=30),
        answered(0.3, 3.0, tokens=50),
        RequestSample(error=http_error(503)),
        RequestSample(error=http_error(503)),
        RequestSample(error=ErrorKind.TIMEOUT),
    ]
    result = summarise(samples, requests=8, duration_seconds=4.0, timed_out=True)
    assert result.requests == 8
    assert (result.completed, result.errors, result.answered) == (3, 3, 6)
    assert result.errors_by_kind == {"http503": 2, "timeout": 1}
    assert result.output_tokens == 100
    assert result.output_tokens_per_second == 25.0
    assert result.requests_per_second == 0.75
    assert result.ttft_p50_seconds == 0.2
    assert result.ttft_mean_seconds == 0.2
    assert result.ttft_p95_seconds == pytest.approx(0.29)
    assert result.latency_p50_seconds == 2.0
    assert result.latency_p95_seconds == pytest.approx(2.9)
    assert result.error_ratio == 0.5
    assert result.timed_out
    assert result.tokens_counted_from is TokenCount.USAGE


def test_where_tokens_were_counted_is_said() -> None:
    def source(*usage: bool) -> TokenCount | None:
        samples = [answered(0.1, 0.2, usage=flag) for flag in usage]
        return summarise(samples, requests=len(samples), duration_seconds=1.0, timed_out=False).tokens_counted_from

    assert source(True, True) is TokenCount.USAGE
    assert source(False, False) is TokenCount.CHUNKS
    assert source(True, False) is TokenCount.MIXED
    assert source() is None


def test_a_run_with_nothing_answered_has_no_latencies_and_zero_rates() -> None:
    result = summarise([RequestSample(error=ErrorKind.CONNECT)], requests=1, duration_seconds=0.0, timed_out=False)
    assert (result.completed, result.errors, result.error_ratio) == (0, 1, 1.0)
    assert result.ttft_p95_seconds is None
    assert result.latency_p50_seconds is None
    assert result.output_tokens_per_second == 0.0


def test_http_errors_are_kinds_by_status_and_odd_statuses_one_kind() -> None:
    assert [http_error(code) for code in (400, 429, 599, 600, 999)] == [
        "http400",
        "http429",
        "http599",
        "httpOther",
        "httpOther",
    ]


def test_the_result_round_trips_through_its_camel_case_json() -> None:
    result = summarise([answered(0.1, 0.5)], requests=1, duration_seconds=0.5, timed_out=False)
    dumped = result.model_dump(mode="json", by_alias=True)
    assert set(dumped) >= {
        "requests",
        "completed",
        "errors",
        "errorsByKind",
        "durationSeconds",
        "outputTokens",
        "outputTokensPerSecond",
        "requestsPerSecond",
        "ttftP50Seconds",
        "ttftP95Seconds",
        "latencyP50Seconds",
        "latencyP95Seconds",
        "tokensCountedFrom",
        "timedOut",
    }
    assert dumped["tokensCountedFrom"] == "usage"
    assert BenchmarkResult.model_validate(dumped) == result
