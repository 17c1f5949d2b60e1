"""The benchmark gates, one by one: each passes and fails at its bound, and the message carries the numbers."""

from __future__ import annotations

from typing import Any

from turnout.api.benchmark import BenchmarkResult, TokenCount
from turnout.api.spec import Benchmark
from turnout.benchmark.gates import judge


def run(**fields: Any) -> BenchmarkResult:
    """A run of 100 requests, all answered, 38 output tokens/s, p95 latency 1 s and TTFT 0.1 s; `fields` override."""
    values: dict[str, Any] = {
        "requests": 100,
        "completed": 100,
        "errors": 0,
        "duration_seconds": 100.0,
        "output_tokens": 3800,
        "output_tokens_per_second": 38.0,
        "requests_per_second": 1.0,
        "ttft_p50_seconds": 0.08,
        "ttft_p95_seconds": 0.1,
        "ttft_mean_seconds": 0.085,
        "latency_p50_seconds": 0.8,
        "latency_p95_seconds": 1.0,
        "tokens_counted_from": TokenCount.USAGE,
        **fields,
    }
    return BenchmarkResult(**values)


def gates(**fields: Any) -> Benchmark:
    return Benchmark.model_validate(fields)


def test_throughput_below_the_ratio_fails_with_both_numbers_and_the_field() -> None:
    verdict = judge(run(output_tokens_per_second=41.2), run(), gates(minThroughputRatio=3.0))
    assert not verdict.passed
    assert verdict.message == "output tokens/s 41.2 vs 38.0 (ratio 1.08 < 3.0, benchmark.minThroughputRatio)"
    assert verdict.failed_gates == ["minThroughputRatio"]


def test_throughput_at_the_ratio_passes_and_the_message_says_every_gate() -> None:
    verdict = judge(run(output_tokens_per_second=114.0), run(), gates(minThroughputRatio=3.0))
    assert verdict.passed
    assert verdict.failed_gates == []
    assert verdict.message == (
        "errors 0 of 100 (ratio 0.00 <= 0.01, benchmark.maxErrorRatio); "
        "output tokens/s 114.0 vs 38.0 (ratio 3.00 >= 3.0, benchmark.minThroughputRatio)"
    )


def test_latency_ratio_judges_p95_latency_and_p95_ttft() -> None:
    faster = judge(run(latency_p95_seconds=0.6, ttft_p95_seconds=0.05), run(), gates(maxLatencyRatio=0.7))
    assert faster.passed
    assert "p95 latency 0.600 s vs 1.000 s (ratio 0.60 <= 0.7, benchmark.maxLatencyRatio)" in faster.message
    assert "p95 TTFT 0.050 s vs 0.100 s (ratio 0.50 <= 0.7, benchmark.maxLatencyRatio)" in faster.message

    slow_start = judge(run(latency_p95_seconds=0.6, ttft_p95_seconds=0.09), run(), gates(maxLatencyRatio=0.7))
    assert not slow_start.passed
    assert slow_start.message == "p95 TTFT 0.090 s vs 0.100 s (ratio 0.90 > 0.7, benchmark.maxLatencyRatio)"
    assert slow_start.failed_gates == ["maxLatencyRatio"]


def test_errors_above_the_ratio_fail() -> None:
    verdict = judge(run(completed=90, errors=10), run(), gates(maxErrorRatio=0.01))
    assert not verdict.passed
    assert verdict.message == "errors 10 of 100 (ratio 0.10 > 0.01, benchmark.maxErrorRatio)"
    assert judge(run(completed=99, errors=1), run(), gates(maxErrorRatio=0.01)).passed


def test_a_run_stopped_at_its_time_bound_fails_saying_how_far_it_got() -> None:
    verdict = judge(run(completed=37, timed_out=True, duration_seconds=300.2), None, gates(timeoutSeconds=300))
    assert not verdict.passed
    assert verdict.failed_gates == ["timeoutSeconds"]
    assert verdict.message == (
        "stopped at the time bound: 37 of 100 requests ended in 300 s (benchmark.timeoutSeconds 300)"
    )


def test_nothing_answered_fails_even_when_errors_are_allowed() -> None:
    nothing = run(completed=0, errors=100, output_tokens=0, output_tokens_per_second=0.0, latency_p95_seconds=None)
    verdict = judge(nothing, run(), gates(maxErrorRatio=1.0, minThroughputRatio=1.0))
    assert not verdict.passed
    assert verdict.failed_gates == ["requests", "minThroughputRatio"]
    assert "none of 100 requests was answered" in verdict.message


def test_a_first_revision_is_judged_by_the_absolute_gates_and_the_ratios_are_said_to_be_skipped() -> None:
    spec = gates(minThroughputRatio=3.0, maxLatencyRatio=0.7, minOutputTokensPerSecond=30, maxP95TtftSeconds=0.5)
    verdict = judge(run(), None, spec)
    assert verdict.passed
    assert "output tokens/s 38.0 (>= 30.0, benchmark.minOutputTokensPerSecond)" in verdict.message
    assert "p95 TTFT 0.100 s (<= 0.5, benchmark.maxP95TtftSeconds)" in verdict.message
    assert "no old revision to compare to (minThroughputRatio, maxLatencyRatio not judged)" in verdict.message

    slow = judge(run(output_tokens_per_second=20.0, ttft_p95_seconds=0.8), None, spec)
    assert slow.failed_gates == ["minOutputTokensPerSecond", "maxP95TtftSeconds"]
    assert slow.message == (
        "output tokens/s 20.0 (< 30.0, benchmark.minOutputTokensPerSecond); "
        "p95 TTFT 0.800 s (> 0.5, benchmark.maxP95TtftSeconds)"
    )


def test_absolute_gates_hold_with_an_old_revision_too() -> None:
    verdict = judge(
        run(output_tokens_per_second=20.0), run(output_tokens_per_second=5.0), gates(minOutputTokensPerSecond=30)
    )
    assert verdict.failed_gates == ["minOutputTokensPerSecond"]


def test_an_old_revision_that_answered_nothing_leaves_the_ratios_unjudged() -> None:
    broken = run(completed=0, errors=100, output_tokens_per_second=0.0, latency_p95_seconds=None, ttft_p95_seconds=None)
    verdict = judge(run(), broken, gates(minThroughputRatio=3.0))
    assert verdict.passed
    assert "the old revision answered none of its requests (minThroughputRatio not judged)" in verdict.message


def test_a_ratio_without_a_denominator_is_not_judged() -> None:
    verdict = judge(run(), run(output_tokens_per_second=0.0, output_tokens=0), gates(minThroughputRatio=3.0))
    assert verdict.passed
    assert "output tokens/s 38.0 vs 0.0 (no ratio, benchmark.minThroughputRatio not judged)" in verdict.message


def test_with_default_gates_only_errors_are_judged() -> None:
    verdict = judge(run(), run(), gates())
    assert verdict.passed
    assert verdict.message == "errors 0 of 100 (ratio 0.00 <= 0.01, benchmark.maxErrorRatio)"


def test_the_verdict_dumps_to_camel_case() -> None:
    verdict = judge(run(output_tokens_per_second=1.0), run(), gates(minThroughputRatio=3.0))
    assert set(verdict.model_dump(by_alias=True)) == {"passed", "message", "failedGates"}
