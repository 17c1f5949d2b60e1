"""turnout's real reconcile, in-process, against the fake cluster, a fake clock and checks the test scripts.

Nothing of the operator lives between two reconciles here either: a restart is just the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from tests.unit.fakes.cluster import FakeCluster, Write
from turnout.api.backend import Backend
from turnout.api.benchmark import BenchmarkResult
from turnout.api.status import Color, InferenceBackendStatus
from turnout.api.traffic import Histogram, TrafficCounters
from turnout.checks import CheckTarget
from turnout.checks.prometheus import QueryAnswer
from turnout.checks.traffic import ScrapeFailure, TrafficScrape
from turnout.kube.cluster import ClusterApi, KubeObject
from turnout.kube.observe import Benchmarker, Checker, Scraper, check_targets
from turnout.reconcile import reconcile
from turnout.rollout.actions import RecordEvent
from turnout.rollout.observed import BenchmarkRun, CheckOutcome

START = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
NAMESPACE = "ml"
NAME = "chat"
PASS = CheckOutcome(passed=True)
T = TypeVar("T")


class InPlace(ThreadPoolExecutor):
    """A thread pool that starts no thread: each call runs at once in the caller's thread.

    The fake cluster never blocks, and a thread hop per API call would make a reconcile slower.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as error:
            done.set_exception(error)
        return done


@dataclass(frozen=True)
class CheckRoundSeen:
    """One check round turnout ran: on which color, for which revision, over which pods, and its outcome."""

    color: Color
    revision: str
    pods: tuple[str, ...]
    outcome: CheckOutcome


class ScriptedChecks:
    """Check rounds whose outcome the test sets in `answer`; a round with no Ready pod to check
    fails, as the real round does."""

    def __init__(self) -> None:
        self.answer = PASS
        self.rounds: list[CheckRoundSeen] = []

    async def __call__(
        self, cluster: ClusterApi, backend: Backend, pods: Sequence[KubeObject], color: Color
    ) -> CheckOutcome:
        targets = check_targets(pods, color, backend.revision, backend.engine_port)
        outcome = self.answer if targets else CheckOutcome(passed=False, message="no Ready pods to check")
        self.rounds.append(CheckRoundSeen(color, backend.revision, tuple(t.pod for t in targets), outcome))
        return outcome


@dataclass
class PodTraffic:
    """How a color's pods serve while the test runs: requests per scrape, their 5xx share, their latency."""

    requests_per_scrape: int = 50
    error_ratio: float = 0.0
    latency_seconds: float = 0.2


LATENCY_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ScriptedTraffic:
    """A canary's traffic as the pods' metrics would show it: every scrape of a color finds it has
    served `requests_per_scrape` more requests, as its `PodTraffic` in `colors` says (by default all
    well and fast); `counters` are the totals so far."""

    def __init__(self) -> None:
        self.colors: dict[Color, PodTraffic] = {color: PodTraffic() for color in Color}
        self.counters: dict[Color, TrafficCounters] = {color: TrafficCounters() for color in Color}
        self.unreadable: str = ""
        """When set, the pods' metrics cannot be read, for this reason."""

    async def __call__(self, backend: Backend, targets: Sequence[CheckTarget]) -> TrafficScrape:
        if not targets:
            return TrafficScrape(None, 0, ())
        if self.unreadable:
            failure = ScrapeFailure(targets[0].pod, targets[0].ip, self.unreadable)
            return TrafficScrape(None, len(targets), (failure,))
        color = Color.GREEN if "-green-" in targets[0].pod else Color.BLUE
        served = self.colors[color]
        errors = round(served.requests_per_scrape * served.error_ratio)
        bucket = next(i for i, bound in enumerate((*LATENCY_BOUNDS, float("inf"))) if served.latency_seconds <= bound)
        n = served.requests_per_scrape
        latency = Histogram(
            le=LATENCY_BOUNDS,
            counts=tuple(n if i >= bucket else 0 for i in range(len(LATENCY_BOUNDS) + 1)),
            sum=n * served.latency_seconds,
        )
        more = TrafficCounters(requests=n, errors=errors, latency=latency, ttft=latency)
        self.counters[color] = self.counters[color].plus(more)
        return TrafficScrape(self.counters[color], len(targets), ())


def benchmark_result(tokens_per_second: float, *, errors: int = 0, requests: int = 100) -> BenchmarkResult:
    """What a benchmark of one pod reports, at `tokens_per_second`, with `errors` of `requests` failing."""
    return BenchmarkResult(
        requests=requests,
        completed=requests - errors,
        errors=errors,
        duration_seconds=10.0,
        output_tokens=int(tokens_per_second * 10),
        output_tokens_per_second=tokens_per_second,
        requests_per_second=requests / 10,
        ttft_p50_seconds=0.1,
        ttft_p95_seconds=0.2,
        latency_p50_seconds=1.0,
        latency_p95_seconds=2.0,
    )


class ScriptedBenchmarks:
    """Benchmark runs whose numbers the test sets per color in `results` (by default alike); `runs`
    lists the (new, old) colors of each run."""

    def __init__(self) -> None:
        self.results: dict[Color, BenchmarkResult] = {color: benchmark_result(100.0) for color in Color}
        self.runs: list[tuple[Color, Color | None]] = []

    async def __call__(
        self, cluster: ClusterApi, backend: Backend, status: InferenceBackendStatus, pods: Sequence[KubeObject]
    ) -> BenchmarkRun:
        preview, active = status.preview_color, status.active_color
        assert preview is not None
        self.runs.append((preview, active))
        return BenchmarkRun(self.results[preview], self.results[active] if active is not None else None)


class ScriptedPrometheus:
    """A Prometheus whose answers the test sets per query text in `answers` (no data by default);
    `asked` lists each (address, query) asked."""

    def __init__(self) -> None:
        self.answers: dict[str, QueryAnswer] = {}
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, address: str, query: str, timeout_seconds: float) -> QueryAnswer:
        self.asked.append((address, query))
        return self.answers.get(query, QueryAnswer(None))


class InProcessOperator:
    """The backend `ml/chat` reconciled by the real `reconcile`, on the fake cluster, at `now`."""

    def __init__(self, cluster: FakeCluster | None = None) -> None:
        self.cluster = cluster if cluster is not None else FakeCluster()
        self.checks = ScriptedChecks()
        self.checker: Checker = self.checks
        """What runs the check rounds: the scripted `checks`, or e.g. the real `run_checks` against a test's server."""
        self.traffic = ScriptedTraffic()
        self.scraper: Scraper = self.traffic
        """What reads a canary's traffic: the scripted `traffic` by default."""
        self.prometheus = ScriptedPrometheus()
        self.benchmarks = ScriptedBenchmarks()
        self.benchmarker: Benchmarker = self.benchmarks
        """What runs a benchmark gate: the scripted `benchmarks`, or the real `run_benchmark`."""
        self.now = START
        self.events: list[RecordEvent] = []
        self.last_writes: list[Write] = []
        """The writes of the last reconcile."""
        self.last_events: list[RecordEvent] = []
        """The Events of the last reconcile."""
        self._loop = _event_loop()

    def __enter__(self) -> InProcessOperator:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._loop.close()

    def restart(self) -> None:
        """A new operator process: a fresh event loop, and nothing remembered but what the cluster holds."""
        self._loop.close()
        self._loop = _event_loop()

    def create(self, spec: KubeObject) -> None:
        self.cluster.create_backend(NAMESPACE, NAME, spec)

    def edit(self, spec: KubeObject) -> None:
        self.cluster.edit_backend_spec(NAMESPACE, NAME, spec)

    def reconcile(self) -> float:
        """One reconcile at `now`; returns seconds until the next. The writes and Events land in `last_*`."""
        writes, events = len(self.cluster.writes), len(self.events)
        try:
            return self._loop.run(
                reconcile(
                    self.cluster,
                    NAMESPACE,
                    NAME,
                    self.events.append,
                    checker=self.checker,
                    scraper=self.scraper,
                    benchmarker=self.benchmarker,
                    querier=self.prometheus,
                    clock=lambda: self.now,
                )
            )
        finally:
            self.last_writes = self.cluster.writes[writes:]
            self.last_events = self.events[events:]

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the operator's event loop, where a test's servers must live to be answered."""
        return self._loop.run(work)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def status(self) -> InferenceBackendStatus:
        return InferenceBackendStatus.model_validate(self.cluster.backend(NAMESPACE, NAME).get("status") or {})

    def service_color(self) -> str | None:
        service = self.cluster.service(NAMESPACE, NAME)
        return None if service is None else service["spec"]["selector"].get("turnout.dev/color")

    def pods_ready(self, color: Color) -> None:
        """The controllers make the color's pods, and they all become Ready."""
        self.cluster.run_controllers()
        self.cluster.pods_become_ready(NAMESPACE, f"{NAME}-{color.value}")

    def pods_fail(self, color: Color, reason: str, message: str = "") -> None:
        """The controllers make the color's pods, and they all fail for `reason` (e.g. CrashLoopBackOff)."""
        self.cluster.run_controllers()
        self.cluster.pods_fail(NAMESPACE, f"{NAME}-{color.value}", reason, message)

    def start_verifying(self, spec: KubeObject) -> None:
        """A healthy backend gets `spec`: the idle color takes it, its pods become Ready, phase Verifying."""
        preview = Color.GREEN if self.status().active_color is Color.BLUE else Color.BLUE
        self.edit(spec)
        self.reconcile()
        self.pods_ready(preview)
        self.reconcile()
        assert self.status().phase == "Verifying", self.status()

    def start_healthy(self, spec: KubeObject) -> None:
        """Create the backend with `spec` and carry it to Healthy on blue: Ready pods, passing checks."""
        self.create(spec)
        self.reconcile()
        self.pods_ready(Color.BLUE)
        while self.status().phase != "Healthy":
            assert self.now < START + timedelta(minutes=5), self.status()
            self.advance(5)
            self.reconcile()


def _event_loop() -> asyncio.Runner:
    runner = asyncio.Runner()
    runner.get_loop().set_default_executor(InPlace())
    return runner
