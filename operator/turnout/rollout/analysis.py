"""The verdict on a canary step, from the traffic each color served over it: pass, fail, or wait for more.

Pure: it gets the counters of the step's window (`TrafficCounters.since` the step's baseline) for
the canary and the stable color, and the limits of `rollout.analysis`. The canary is judged on its
share of 5xx answers, and on its p95 end-to-end latency against the stable color's. Too little
traffic is never a pass: below `minRequests` requests on the canary the verdict is to wait.

The team's own Prometheus metrics (`analysis.metrics`) come as data too, read in the same round:
each value must be in its `thresholdRange`. A metric without data waits, like too little traffic;
one Prometheus could not answer fails the round, whatever the traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from turnout.api.spec import AnalysisMetric
from turnout.api.traffic import TrafficCounters
from turnout.rollout.observed import MetricReading

P95 = 0.95


class Outcome(StrEnum):
    """What the step's traffic says of the canary."""

    PASS = "Pass"
    FAIL = "Fail"
    WAIT = "Wait"


@dataclass(frozen=True)
class Measurement:
    """What one color served over the step, as the status reports it (seconds; None where nothing was seen)."""

    requests: int
    error_ratio: float | None
    p95_latency_seconds: float | None
    p95_ttft_seconds: float | None

    @classmethod
    def of(cls, counters: TrafficCounters) -> Measurement:
        """The numbers of `counters`: requests, 5xx share, p95 end-to-end latency, p95 time to first token."""
        return cls(
            requests=counters.requests,
            error_ratio=counters.error_ratio,
            p95_latency_seconds=counters.latency.quantile(P95),
            p95_ttft_seconds=counters.ttft.quantile(P95),
        )


@dataclass(frozen=True)
class Verdict:
    """The outcome, the sentence a person reads (with the numbers), and the numbers for the status."""

    outcome: Outcome
    message: str
    canary: Measurement
    stable: Measurement | None
    """None when the stable color's traffic was not given."""
    latency_ratio: float | None
    """Canary p95 latency ÷ stable p95 latency; None when they were not compared."""


def judge(
    canary: TrafficCounters,
    stable: TrafficCounters | None,
    *,
    max_error_ratio: float | None,
    max_latency_ratio: float | None,
    min_requests: int,
    metrics: Sequence[AnalysisMetric] = (),
    readings: Sequence[MetricReading] = (),
) -> Verdict:
    """Judge the canary's traffic over a step against the stable color's, and the team's metrics.

    FAIL at once when Prometheus gave no usable answer for one of `metrics` (its reading in
    `readings` has a problem). WAIT while the canary has fewer than `min_requests` requests (or
    none). FAIL when its 5xx share is above `max_error_ratio`, or its p95 latency is above
    `max_latency_ratio` times the stable color's (the latency is compared only when both colors
    have `min_requests` requests and latencies, and the message says when it was not), or a
    metric's value is outside its `thresholdRange`. WAIT when a metric has no data (or no reading).
    Otherwise PASS. A limit that is None is not checked.
    """
    measured = Measurement.of(canary)
    baseline = Measurement.of(stable) if stable is not None else None
    metric_words = _judge_metrics(metrics, readings)
    if metric_words.broken:
        return Verdict(Outcome.FAIL, "; ".join(metric_words.broken), measured, baseline, latency_ratio=None)
    if canary.requests < max(min_requests, 1):
        message = f"{canary.requests}/{max(min_requests, 1)} requests on the canary so far"
        return Verdict(Outcome.WAIT, message, measured, baseline, latency_ratio=None)

    failures: list[str] = []
    passes: list[str] = []
    if max_error_ratio is not None:
        ratio, limit = canary.errors / canary.requests, _written(max_error_ratio, 1, percent=True)
        words = f"canary 5xx {_written(ratio, 1, percent=True, beside=max_error_ratio)} of {canary.requests} requests"
        if ratio > max_error_ratio:
            failures.append(f"{words} > {limit} (analysis.maxErrorRatio)")
        else:
            passes.append(f"{words} <= {limit}")

    latency_ratio = None
    if max_latency_ratio is not None:
        compared = _p95_latencies(measured, baseline, min_requests)
        if isinstance(compared, str):
            passes.append(f"latency not compared: {compared}")
        else:
            ours, theirs = compared
            latency_ratio = ours / theirs
            shown = _written(latency_ratio, 2, beside=max_latency_ratio)
            words = f"canary p95 latency {ours:.2f} s vs stable {theirs:.2f} s (ratio {shown}"
            if latency_ratio > max_latency_ratio:
                failures.append(f"{words} > {max_latency_ratio:g}, analysis.maxLatencyRatio)")
            else:
                passes.append(f"{words} <= {max_latency_ratio:g})")

    failures += metric_words.failures
    passes += metric_words.passes
    if failures:
        return Verdict(Outcome.FAIL, "; ".join(failures), measured, baseline, latency_ratio)
    if metric_words.waits:
        return Verdict(Outcome.WAIT, "; ".join([*metric_words.waits, *passes]), measured, baseline, latency_ratio)
    message = "; ".join(passes) or f"{canary.requests} requests on the canary, no limit to check"
    return Verdict(Outcome.PASS, message, measured, baseline, latency_ratio)


def judge_metrics(metrics: Sequence[AnalysisMetric], readings: Sequence[MetricReading]) -> tuple[Outcome, str]:
    """The verdict of the team's Prometheus metrics alone (an engine that serves no metrics of its own).

    FAIL when Prometheus gave no usable answer for one, or a value is out of its range; WAIT when
    one has no data (or no reading); otherwise PASS. The outcome and the sentence with the numbers.
    """
    words = _judge_metrics(metrics, readings)
    if words.broken or words.failures:
        return Outcome.FAIL, "; ".join([*words.broken, *words.failures])
    if words.waits:
        return Outcome.WAIT, "; ".join([*words.waits, *words.passes])
    return Outcome.PASS, "; ".join(words.passes) or "no metric to check"


@dataclass(frozen=True)
class _MetricWords:
    """The metrics' verdicts, sorted: no usable answer, out of range, in range, no data."""

    broken: tuple[str, ...]
    failures: tuple[str, ...]
    passes: tuple[str, ...]
    waits: tuple[str, ...]


def _judge_metrics(metrics: Sequence[AnalysisMetric], readings: Sequence[MetricReading]) -> _MetricWords:
    read = {reading.name: reading for reading in readings}
    broken: list[str] = []
    failures: list[str] = []
    passes: list[str] = []
    waits: list[str] = []
    for metric in metrics:
        reading = read.get(metric.name)
        if reading is not None and reading.problem:
            broken.append(f"metric {metric.name}: {reading.problem}")
        elif reading is None or reading.value is None:
            waits.append(f"metric {metric.name}: no data from Prometheus yet")
        else:
            inside, words = _in_range(metric, reading.value)
            (passes if inside else failures).append(f"metric {metric.name} = {words}")
    return _MetricWords(tuple(broken), tuple(failures), tuple(passes), tuple(waits))


def _in_range(metric: AnalysisMetric, value: float) -> tuple[bool, str]:
    """Whether `value` is in the metric's range, and the words: `0.01 within [, 0.05]`, or
    `0.2 > max 0.05 (thresholdRange of analysis.metrics)`."""
    low, high = metric.threshold_range.min, metric.threshold_range.max
    if high is not None and value > high:
        return False, f"{_number(value, high)} > max {_number(high)} (thresholdRange of analysis.metrics)"
    if low is not None and value < low:
        return False, f"{_number(value, low)} < min {_number(low)} (thresholdRange of analysis.metrics)"
    shown = f"[{'' if low is None else _number(low)}, {'' if high is None else _number(high)}]"
    return True, f"{_number(value)} within {shown}"


def _number(value: float, beside: float | None = None) -> str:
    """`value` with 4 significant digits, more where that would read as the bound `beside` it."""
    for digits in range(4, 18):
        text = f"{value:.{digits}g}"
        if beside is None or value == beside or float(text) != beside:
            return text
    return repr(value)


def _p95_latencies(canary: Measurement, stable: Measurement | None, min_requests: int) -> tuple[float, float] | str:
    """The canary's and the stable color's p95 latency (seconds), or why they cannot be compared."""
    if stable is None:
        return "no traffic of the stable color"
    if stable.requests < min_requests:
        return f"{stable.requests}/{min_requests} requests on the stable color"
    if canary.p95_latency_seconds is None:
        return "the canary's engine measured no latency"
    if not stable.p95_latency_seconds:
        return "the stable color's engine measured no latency"
    return canary.p95_latency_seconds, stable.p95_latency_seconds


def _written(value: float, decimals: int, *, percent: bool = False, beside: float | None = None) -> str:
    """`value` with `decimals` decimals (as a percentage with `percent`), more (up to 6) where fewer
    would misread: a limit written as a different number, a value as its different limit `beside`."""
    scale, unit = (100, "%") if percent else (1, "")
    for places in range(decimals, 7):
        text = f"{value * scale:.{places}f}"
        read = float(text) / scale
        if (read == value) if beside is None else (value == beside or read != beside):
            break
    return text + unit
