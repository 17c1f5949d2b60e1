"""A color's traffic, from each of its Ready pods' own metrics: scraped concurrently, read by the engine, summed.

No Prometheus server is involved: turnout GETs the engine's metrics path on every pod itself, the
answer bounded like a check's (`PodProbe`, at most 1 MiB), and the engine reads it
(`EngineProfile.metrics`). A pod that cannot be scraped leaves the color without a sample for this
round, and the result says which pod and why; the caller waits for the next round. Nothing raises.
No API key is sent: engines serve their metrics without one (vLLM guards only `/v1/*`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from turnout.api.traffic import TrafficCounters
from turnout.checks.round import CheckTarget, target_probe
from turnout.engines.probe import CheckFailed, pod_client
from turnout.engines.profile import EngineMetrics, EngineProfile

# Enough of the reason a metrics text was refused to find the bad series, short enough for a status.
_REASON_CHARS = 200


@dataclass(frozen=True)
class ScrapeFailure:
    """A pod whose metrics could not be read this round, and why (a sentence a person reads)."""

    pod: str
    ip: str
    message: str

    def __str__(self) -> str:
        return f"pod {self.pod} ({self.ip}): {self.message}"


@dataclass(frozen=True)
class TrafficScrape:
    """One color, one round: its pods' counters summed, or why there is no sample."""

    counters: TrafficCounters | None
    """The sum over every pod; None when a pod could not be scraped, or there was none."""
    pods: int
    """Pods asked: the Ready pods of the color."""
    failures: tuple[ScrapeFailure, ...]
    """The pods that could not be scraped, in the order of the targets."""

    @property
    def message(self) -> str:
        """Why there is no sample ("" when there is one): the first failure, and how many more."""
        if self.counters is not None:
            return ""
        if not self.failures:
            return "no Ready pods to scrape"
        more = len(self.failures) - 1
        return str(self.failures[0]) + (f" (and {more} more pod{'s' if more > 1 else ''})" if more else "")


async def scrape_color(
    profile: EngineProfile,
    targets: Sequence[CheckTarget],
    *,
    timeout_seconds: float,
    client: httpx.AsyncClient | None = None,
) -> TrafficScrape:
    """Scrape the engine's metrics (`profile.metrics`) of every target concurrently and sum what the
    pods served.

    `timeout_seconds` bounds each pod's request as a whole (connect to last byte). The engine must
    serve metrics: one that does not is judged by its checks alone. A `client`
    given is used and left open; otherwise one is made for the round and closed.
    """
    metrics = profile.metrics
    if metrics is None:
        raise ValueError("the engine serves no metrics to scrape; judge its pods by their checks")
    if not targets:
        return TrafficScrape(counters=None, pods=0, failures=())
    if client is None:
        async with pod_client() as own:
            return await scrape_color(profile, targets, timeout_seconds=timeout_seconds, client=own)
    read = await asyncio.gather(*(_scrape_pod(client, profile, metrics, t, timeout_seconds) for t in targets))
    failures = tuple(found for found in read if isinstance(found, ScrapeFailure))
    if failures:
        return TrafficScrape(counters=None, pods=len(targets), failures=failures)
    total = TrafficCounters()
    for counters in (found for found in read if isinstance(found, TrafficCounters)):
        total = total.plus(counters)
    return TrafficScrape(counters=total, pods=len(targets), failures=())


async def _scrape_pod(
    client: httpx.AsyncClient,
    profile: EngineProfile,
    metrics: EngineMetrics,
    target: CheckTarget,
    timeout_seconds: float,
) -> TrafficCounters | ScrapeFailure:
    probe = target_probe(client, profile, target, api_key=None, timeout_seconds=timeout_seconds)
    try:
        answer = await probe.request("GET", metrics.path)
        return metrics.read(answer.body.decode("utf-8"))
    except CheckFailed as failed:
        return ScrapeFailure(target.pod, target.ip, str(failed))
    except ValueError as refused:  # UnicodeDecodeError is one
        reason = probe.shown(str(refused), _REASON_CHARS)
        return ScrapeFailure(target.pod, target.ip, f"{metrics.path} is not metrics turnout can read: {reason}")
