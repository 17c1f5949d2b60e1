"""What a color served, as counters read from its pods' own metrics: `TrafficCounters`.

Counters only grow while a pod lives. The traffic of a canary step is the difference between the
counters now and at the step's start (`since`), the start being kept in the backend's status
(`status.canary.baseline`), so the model is small and its JSON plain:

    {"requests": 200, "errors": 3,
     "latency": {"le": [0.3, 0.5, ..., 7680.0], "counts": [150, 182, ..., 197, 197], "sum": 61.8},
     "ttft": {"le": [0.001, ..., 2560.0], "counts": [...], "sum": 9.4}}

A histogram's `counts` are cumulative, one per bound in `le` and a last one for `+Inf` (JSON has
no infinity), which is also the number of observations. Nothing here knows an engine: the engines
read their metrics into this model (`EngineProfile.traffic`).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

MAX_BUCKETS = 64
"""Most finite bounds a histogram keeps (vLLM's have 21 and 22): the status stays small whatever a pod serves."""
MAX_COUNT = 2**53
"""Largest count kept: every integer up to it is exact as a JSON number, in any reader."""

Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Bound = Annotated[float, Field(allow_inf_nan=False)]


class TrafficModel(BaseModel):
    """Base of the traffic models: camelCase aliases, as in the status they are kept in; immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True, use_attribute_docstrings=True
    )


class Histogram(TrafficModel):
    """A Prometheus histogram of seconds, summed over pods: cumulative counts by upper bound, and the sum."""

    le: tuple[Bound, ...] = Field(default=(), max_length=MAX_BUCKETS)
    """The finite upper bounds of the buckets, in seconds, increasing; `+Inf` is implied."""
    counts: tuple[Count, ...] = Field(default=(0,), min_length=1, max_length=MAX_BUCKETS + 1)
    """Observations at or below each bound of `le`, then at or below `+Inf` (all of them)."""
    sum: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """The sum of the observations, in seconds."""

    @model_validator(mode="after")
    def _cumulative(self) -> Self:
        if len(self.counts) != len(self.le) + 1:
            raise ValueError(f"{len(self.le)} bounds need {len(self.le) + 1} counts (the last for +Inf)")
        if any(lower >= upper for lower, upper in pairwise(self.le)):
            raise ValueError("bounds must increase")
        if any(lower > upper for lower, upper in pairwise(self.counts)):
            raise ValueError("counts must not decrease from one bound to the next (they are cumulative)")
        return self

    @property
    def count(self) -> int:
        """The number of observations."""
        return self.counts[-1]

    def plus(self, other: Histogram) -> Histogram:
        """The two histograms as one (two pods' together).

        Counts are added bound by bound. A bound only one side has is dropped: the other side's count
        at it is unknown. A side without observations counts 0 at every bound, so it keeps all of the
        other's.
        """
        bounds = _shared_bounds(self, other)
        counts = (a + b for a, b in zip(self._at(bounds), other._at(bounds), strict=True))
        return Histogram(le=bounds, counts=tuple(counts), sum=self.sum + other.sum)

    def since(self, base: Histogram) -> Histogram | None:
        """The observations made after `base` was read; None when a count went down (a pod restarted or left).

        The sum is not compared: added up in another order it may differ in its last digits.
        """
        bounds = _shared_bounds(self, base)
        counts = tuple(now - then for now, then in zip(self._at(bounds), base._at(bounds), strict=True))
        # A bucket that lost observations to a lower one: the pods are not the ones `base` was read from.
        if any(count < 0 for count in counts) or any(a > b for a, b in pairwise(counts)):
            return None
        return Histogram(le=bounds, counts=counts, sum=max(self.sum - base.sum, 0.0))

    def quantile(self, q: float) -> float | None:
        """The `q`-quantile (0 ≤ q ≤ 1) in seconds, as Prometheus' `histogram_quantile` estimates it.

        Linear interpolation inside the bucket that holds it, the first bucket starting at 0 (or
        answering its bound when that is ≤ 0); a quantile in the `+Inf` bucket answers the highest
        finite bound. None when there is no observation or no finite bound. For q = 0, the start of
        the first bucket holding an observation (where Prometheus would divide 0 by 0).
        """
        if not 0 <= q <= 1:
            raise ValueError(f"a quantile is between 0 and 1, not {q}")
        if not self.count or not self.le:
            return None
        rank = q * self.count
        found = next(i for i, count in enumerate(self.counts) if count >= rank and count > 0)
        if found == len(self.le):
            return self.le[-1]
        upper = self.le[found]
        lower, below = (self.le[found - 1], self.counts[found - 1]) if found else (0.0, 0)
        # min(): rounding must not carry the estimate past its bucket; and a first bucket whose
        # bound is at or below 0 (so below the 0 it starts from) answers that bound, as in Prometheus.
        return min(lower + (upper - lower) * (rank - below) / (self.counts[found] - below), upper)

    def _at(self, bounds: tuple[float, ...]) -> tuple[int, ...]:
        """The cumulative counts at `bounds` (bounds this histogram has, or any when it is empty), then +Inf."""
        if not self.count:
            return (0,) * (len(bounds) + 1)
        at = dict(zip(self.le, self.counts, strict=False))
        return (*(at[bound] for bound in bounds), self.count)


def _shared_bounds(one: Histogram, other: Histogram) -> tuple[float, ...]:
    if not other.count:
        return one.le
    if not one.count:
        return other.le
    theirs = set(other.le)
    return tuple(bound for bound in one.le if bound in theirs)


class TrafficCounters(TrafficModel):
    """What pods served since they started (or, from `since`, over a window): requests, 5xx, latencies."""

    requests: Count = 0
    """Finished HTTP requests to the inference endpoints (chat, completions, embeddings, ...)."""
    errors: Count = 0
    """Those of `requests` answered with a 5xx status."""
    latency: Histogram = Field(default_factory=Histogram)
    """End-to-end latency of the requests the engine ran, in seconds."""
    ttft: Histogram = Field(default_factory=Histogram)
    """Time to the first token of the requests the engine ran, in seconds."""

    @model_validator(mode="after")
    def _errors_are_requests(self) -> Self:
        if self.errors > self.requests:
            raise ValueError(f"errors ({self.errors}) are some of the requests ({self.requests}), not more")
        return self

    def plus(self, other: TrafficCounters) -> TrafficCounters:
        """Both pods' (or colors') counters as one."""
        return TrafficCounters(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            latency=self.latency.plus(other.latency),
            ttft=self.ttft.plus(other.ttft),
        )

    def since(self, base: TrafficCounters) -> TrafficCounters | None:
        """What was served after `base` was read from the same pods.

        None when any counter went down: a pod restarted or left, and the window starts again.
        """
        latency, ttft = self.latency.since(base.latency), self.ttft.since(base.ttft)
        requests, errors = self.requests - base.requests, self.errors - base.errors
        if latency is None or ttft is None or not 0 <= errors <= requests:
            return None
        return TrafficCounters(requests=requests, errors=errors, latency=latency, ttft=ttft)

    @property
    def error_ratio(self) -> float | None:
        """The share of requests answered 5xx (0..1); None without requests."""
        return self.errors / self.requests if self.requests else None
