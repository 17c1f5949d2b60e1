"""From the requests of one run to its `BenchmarkResult`: counts, rates and percentiles. Pure."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from turnout.api.benchmark import BenchmarkResult, TokenCount


class ErrorKind(StrEnum):
    """Why a request failed, other than an HTTP error status (which is `http<code>`, see `http_error`)."""

    TIMEOUT = "timeout"
    """No complete answer within the request's time bound."""
    CONNECT = "connect"
    """No connection to the endpoint."""
    BROKEN_STREAM = "brokenStream"
    """The connection ended, or the HTTP went wrong, before the answer did."""
    BAD_STREAM = "badStream"
    """The answer was not an OpenAI chat completion stream (not SSE, not JSON, a line too long)."""
    STREAM_ERROR = "streamError"
    """The engine reported an error in the stream (`data: {"error": ...}`), after its 200."""


def http_error(status_code: int) -> str:
    """The error kind of an HTTP answer with status `status_code` (>= 400): `http503`; `httpOther` beyond 599."""
    return f"http{status_code}" if 400 <= status_code <= 599 else "httpOther"


@dataclass(frozen=True)
class RequestSample:
    """One request of a run: answered (`error` None) with its timings and tokens, or failed with its kind."""

    error: str | None = None
    """The error kind (an `ErrorKind` or `http<code>`), None when answered in full."""
    ttft_seconds: float | None = None
    """Seconds from sending the request to its first chunk of content; None when none came."""
    latency_seconds: float | None = None
    """Seconds from sending the request to the end of its answer; None when it failed."""
    output_tokens: int = 0
    """Output tokens of the answer."""
    tokens_from_usage: bool = False
    """The output tokens are the engine's `usage.completion_tokens` (else the content chunks, counted)."""


def summarise(
    samples: Sequence[RequestSample], *, requests: int, duration_seconds: float, timed_out: bool
) -> BenchmarkResult:
    """The result of a run that was to send `requests` requests, took `duration_seconds` (wall clock)
    and ended with `samples` (one per request that came to an end, in any order)."""
    answered = [sample for sample in samples if sample.error is None]
    errors = Counter(sample.error for sample in samples if sample.error is not None)
    ttfts = [sample.ttft_seconds for sample in answered if sample.ttft_seconds is not None]
    latencies = [sample.latency_seconds for sample in answered if sample.latency_seconds is not None]
    output_tokens = sum(sample.output_tokens for sample in answered)
    return BenchmarkResult(
        requests=requests,
        completed=len(answered),
        errors=sum(errors.values()),
        errors_by_kind=dict(sorted(errors.items())),
        duration_seconds=round(duration_seconds, 4),
        output_tokens=output_tokens,
        output_tokens_per_second=_rate(output_tokens, duration_seconds),
        requests_per_second=_rate(len(answered), duration_seconds),
        ttft_p50_seconds=_seconds(percentile(ttfts, 50)),
        ttft_p95_seconds=_seconds(percentile(ttfts, 95)),
        ttft_mean_seconds=_seconds(statistics.fmean(ttfts) if ttfts else None),
        latency_p50_seconds=_seconds(percentile(latencies, 50)),
        latency_p95_seconds=_seconds(percentile(latencies, 95)),
        tokens_counted_from=_token_count(answered),
        timed_out=timed_out,
    )


def percentile(values: Sequence[float], percent: float) -> float | None:
    """The `percent`th percentile (0 to 100) of `values`, interpolated linearly between the two nearest
    ranks as numpy's default does (so it agrees with vLLM's benchmark); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * percent / 100
    below = math.floor(rank)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (rank - below)


def _token_count(answered: Sequence[RequestSample]) -> TokenCount | None:
    from_usage = {sample.tokens_from_usage for sample in answered}
    if not from_usage:
        return None
    if from_usage == {True}:
        return TokenCount.USAGE
    return TokenCount.CHUNKS if from_usage == {False} else TokenCount.MIXED


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 3) if seconds > 0 else 0.0


def _seconds(value: float | None) -> float | None:
    # A tenth of a millisecond is finer than a benchmark over a network can tell apart.
    return None if value is None else round(value, 4)
