"""The gates of `rollout.benchmark`: may a new revision take traffic, given its numbers and the old one's? Pure.

Every gate that is set is judged, and the verdict's message carries the numbers behind it, each part
naming the field that set the bound, e.g. `output tokens/s 41.2 vs 38.0 (ratio 1.08 < 3.0,
benchmark.minThroughputRatio)`. Ratios are new ÷ old. They need an old run that answered: without
one (a first revision, or an old revision that answered nothing) they are not judged, and the
message says so; the absolute gates and the error ratio always are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from turnout.api.benchmark import BenchmarkResult, BenchmarkVerdict
from turnout.api.spec import Benchmark


@dataclass(frozen=True)
class _Gate:
    """One gate's outcome: the field that set it (None for a note) and the sentence with its numbers."""

    field: str | None
    passed: bool
    text: str


def judge(new: BenchmarkResult, old: BenchmarkResult | None, gates: Benchmark) -> BenchmarkVerdict:
    """The verdict on the new revision's run `new`, compared with the old revision's `old` (None: there
    is none) by the gates of `gates`."""
    outcomes = [*_completion(new, gates), *_absolute(new, gates), *_relative(new, old, gates)]
    failed = [outcome for outcome in outcomes if not outcome.passed]
    shown = failed or outcomes
    return BenchmarkVerdict(
        passed=not failed,
        message="; ".join(outcome.text for outcome in shown) or "no gate set",
        failed_gates=[outcome.field for outcome in failed if outcome.field],
    )


def _completion(new: BenchmarkResult, gates: Benchmark) -> list[_Gate]:
    """The run itself: it ended within its time bound, answered something, and few of its requests failed."""
    outcomes = []
    if new.timed_out:
        outcomes.append(
            _Gate(
                "timeoutSeconds",
                False,
                f"stopped at the time bound: {new.answered} of {new.requests} requests ended in "
                f"{new.duration_seconds:.0f} s (benchmark.timeoutSeconds {gates.timeout_seconds})",
            )
        )
    if new.completed == 0:
        outcomes.append(_Gate("requests", False, f"none of {new.requests} requests was answered"))
    ratio = new.error_ratio
    outcomes.append(
        _Gate(
            "maxErrorRatio",
            ratio <= gates.max_error_ratio,
            f"errors {new.errors} of {new.answered} "
            f"(ratio {ratio:.2f} {_within(ratio <= gates.max_error_ratio, '<=', '>')} {gates.max_error_ratio}, "
            "benchmark.maxErrorRatio)",
        )
    )
    return outcomes


def _absolute(new: BenchmarkResult, gates: Benchmark) -> list[_Gate]:
    outcomes = []
    floor = gates.min_output_tokens_per_second
    if floor is not None:
        passed = new.output_tokens_per_second >= floor
        outcomes.append(
            _Gate(
                "minOutputTokensPerSecond",
                passed,
                f"output tokens/s {new.output_tokens_per_second:.1f} "
                f"({_within(passed, '>=', '<')} {floor}, benchmark.minOutputTokensPerSecond)",
            )
        )
    ceiling = gates.max_p95_ttft_seconds
    if ceiling is not None:
        ttft = new.ttft_p95_seconds
        passed = ttft is not None and ttft <= ceiling
        measured = "none measured" if ttft is None else f"{ttft:.3f} s"
        outcomes.append(
            _Gate(
                "maxP95TtftSeconds",
                passed,
                f"p95 TTFT {measured} ({_within(passed, '<=', '>')} {ceiling}, benchmark.maxP95TtftSeconds)",
            )
        )
    return outcomes


def _relative(new: BenchmarkResult, old: BenchmarkResult | None, gates: Benchmark) -> list[_Gate]:
    wanted = [
        name
        for name, value in (
            ("minThroughputRatio", gates.min_throughput_ratio),
            ("maxLatencyRatio", gates.max_latency_ratio),
        )
        if value is not None
    ]
    if not wanted:
        return []
    if old is None:
        return [_Gate(None, True, f"no old revision to compare to ({', '.join(wanted)} not judged)")]
    if old.completed == 0:
        return [_Gate(None, True, f"the old revision answered none of its requests ({', '.join(wanted)} not judged)")]
    outcomes = []
    if gates.min_throughput_ratio is not None:
        outcomes.append(
            _ratio(
                "output tokens/s",
                new.output_tokens_per_second,
                old.output_tokens_per_second,
                lambda value: f"{value:.1f}",
                gates.min_throughput_ratio,
                "minThroughputRatio",
                at_least=True,
            )
        )
    if gates.max_latency_ratio is not None:
        for what, new_value, old_value in (
            ("p95 latency", new.latency_p95_seconds, old.latency_p95_seconds),
            ("p95 TTFT", new.ttft_p95_seconds, old.ttft_p95_seconds),
        ):
            outcomes.append(
                _ratio(
                    what,
                    new_value,
                    old_value,
                    lambda value: f"{value:.3f} s",
                    gates.max_latency_ratio,
                    "maxLatencyRatio",
                    at_least=False,
                )
            )
    return outcomes


def _ratio(
    what: str,
    new: float | None,
    old: float | None,
    shown: Callable[[float], str],
    bound: float,
    field: str,
    *,
    at_least: bool,
) -> _Gate:
    """`what` new vs old, their ratio against `bound` (a floor when `at_least`, else a ceiling)."""
    if new is None or old is None or old <= 0:
        got = "none measured" if new is None else shown(new)
        return _Gate(None, True, f"{what} {got} vs {'none measured' if old is None else shown(old)} "
                     f"(no ratio, benchmark.{field} not judged)")  # fmt: skip
    ratio = new / old
    passed = ratio >= bound if at_least else ratio <= bound
    relation = _within(passed, ">=", "<") if at_least else _within(passed, "<=", ">")
    return _Gate(
        field, passed, f"{what} {shown(new)} vs {shown(old)} (ratio {ratio:.2f} {relation} {bound}, benchmark.{field})"
    )


def _within(passed: bool, holds: str, breaks: str) -> str:
    return holds if passed else breaks
