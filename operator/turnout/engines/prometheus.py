"""Prometheus text as an engine serves it on its metrics path, read into counters for `EngineMetrics.read`.

The text is parsed by prometheus-client's own parser; this module only picks samples by name and
labels and adds them up. Series are matched by their sample names (`x_total`, `x_bucket`, `x_sum`),
which are the same whichever way a family is declared. What an engine serves is not trusted: a
value that is no count, or a histogram that is no histogram, raises ValueError saying which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from turnout.api.traffic import MAX_BUCKETS, MAX_COUNT, Histogram

Labels = Mapping[str, str]


@dataclass(frozen=True)
class Sample:
    """One line of Prometheus text: a sample name, its labels, its value."""

    name: str
    labels: Labels
    value: float


def samples(metrics_text: str) -> list[Sample]:
    """Every sample of `metrics_text`; ValueError when it is not Prometheus text."""
    try:
        return [
            Sample(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(metrics_text)
            for sample in family.samples
        ]
    # The parser signals a malformed line by whichever error it meets first.
    except (ValueError, IndexError, KeyError, TypeError) as error:
        raise ValueError(f"not Prometheus text: {error}") from None


def counter_total(found: Sequence[Sample], name: str, where: Callable[[Labels], bool] = lambda _: True) -> int:
    """The sum of sample `name` over the label sets `where` accepts (all by default): a count."""
    counts = [_count(name, sample.value) for sample in found if sample.name == name and where(sample.labels)]
    return _count(name, sum(counts))


def histogram(found: Sequence[Sample], name: str) -> Histogram:
    """Histogram `name` (samples `name_bucket`, `name_sum`) over all its label sets, added by `Histogram.plus`.

    No sample of it is an empty histogram.
    """
    buckets: dict[frozenset[tuple[str, str]], dict[float, int]] = {}
    sums: dict[frozenset[tuple[str, str]], float] = {}
    for sample in found:
        key = frozenset((label, value) for label, value in sample.labels.items() if label != "le")
        if sample.name == f"{name}_sum":
            sums[key] = sample.value
        elif sample.name == f"{name}_bucket" and "le" in sample.labels:
            buckets.setdefault(key, {})[_bound(name, sample.labels["le"])] = _count(name, sample.value)
    merged = Histogram()
    for key in buckets.keys() | sums.keys():
        merged = merged.plus(_one_histogram(name, buckets.get(key, {}), sums.get(key, 0.0)))
    return merged


def _one_histogram(name: str, buckets: dict[float, int], total: float) -> Histogram:
    if float("inf") not in buckets:
        raise ValueError(f"histogram {name} has no +Inf bucket")
    bounds = sorted(bound for bound in buckets if bound != float("inf"))
    if len(bounds) > MAX_BUCKETS:
        raise ValueError(f"histogram {name} has {len(bounds)} buckets; turnout reads at most {MAX_BUCKETS}")
    try:
        return Histogram(le=tuple(bounds), counts=tuple(buckets[bound] for bound in [*bounds, float("inf")]), sum=total)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ValueError(f"histogram {name}: {where + ': ' if where else ''}{problem['msg']}") from None


def _bound(name: str, text: str) -> float:
    try:
        bound = float(text)
    except ValueError:
        raise ValueError(f"histogram {name} has a bucket bound that is no number") from None
    if bound != bound or bound == float("-inf"):
        raise ValueError(f"histogram {name} has a bucket bound that is no number")
    return bound


def _count(name: str, value: float) -> int:
    if not (0 <= value <= MAX_COUNT and float(value).is_integer()):
        raise ValueError(f"{name} is not a count (a whole number from 0 to {MAX_COUNT}): {value:g}")
    return int(value)
