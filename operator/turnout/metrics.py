"""turnout's Prometheus metrics, on the default registry, and the HTTP exporter that serves them.

Labels stay low-cardinality on purpose: phases, engines, results and CamelCase reasons, never a
backend's name or a free-text message (those go to status, Events and logs).
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from turnout.api.status import Phase
from turnout.engines import ENGINES
from turnout.rollout.actions import Benchmarked

# How a cutover can end (the values of `turnout.rollout.actions.CutoverResult`).
CUTOVER_RESULTS = ("promoted", "rolled_back", "superseded", "aborted")


BACKENDS = Gauge("turnout_backends", "InferenceBackends by phase and engine.", ["phase", "engine"])
CUTOVERS = Counter("turnout_cutovers", "Cutovers by how they ended.", ["result"])
CUTOVER_DURATION = Histogram(
    "turnout_cutover_duration_seconds",
    "From a new revision's first step to its end (promoted or not), in seconds.",
    # vLLM loads weights for minutes; the tail reaches the default 30-minute ready timeout.
    buckets=(10, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 2700, 3600),
)
ROLLBACKS = Counter("turnout_rollbacks", "Rollbacks by reason (ReadyTimeout, CheckFailed, ...).", ["reason"])
CHECK_LATENCY = Histogram(
    "turnout_check_latency_seconds",
    "Time to check one pod (all of its requests in one round), in seconds.",
    ["engine"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SERVING_FAILURES = Counter(
    "turnout_serving_failures",
    "Times the revision serving traffic failed its checks after its bake (rolled back or left Degraded), by reason.",
    ["reason"],
)
RECONCILES = Counter("turnout_reconciles", "Reconciles that ran to their end (observe, plan, execute, status).")
API_WRITES = Counter("turnout_api_writes", "Writes this replica sent to the API server, by verb.", ["verb"])
LEADING = Gauge("turnout_leading", "1 while this replica holds the leader-election Lease (or runs without one).")
RECONCILE_ERRORS = Counter("turnout_reconcile_errors", "Reconcile attempts that failed, by kind.", ["kind"])
BENCHMARKS = Counter("turnout_benchmarks", "Benchmark gates judged, by verdict (passed, failed).", ["verdict"])
BENCHMARK_THROUGHPUT = Histogram(
    "turnout_benchmark_output_tokens_per_second",
    "Output tokens/s one pod served under the benchmark, by role (new: the revision judged; old: the serving one).",
    ["role"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
BENCHMARK_TTFT = Histogram(
    "turnout_benchmark_ttft_p95_seconds",
    "p95 time to first token of one pod under the benchmark, by role (new, old), in seconds.",
    ["role"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SWITCH_LATENCY = Histogram(
    "turnout_switch_latency_seconds",
    "From the new color proven to the Service's selector patched, in seconds.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

# Every (phase, engine) series exists from the start, so a phase that empties reads 0, not absent.
for _engine in ENGINES:
    for _phase in Phase:
        BACKENDS.labels(phase=_phase.value, engine=_engine.value).set(0)
    CHECK_LATENCY.labels(engine=_engine.value)
for _result in CUTOVER_RESULTS:
    CUTOVERS.labels(result=_result)
for _verdict in ("passed", "failed"):
    BENCHMARKS.labels(verdict=_verdict)

# (namespace, name) -> (engine, phase): one phase per backend; the gauge is recomputed from it.
_phases: dict[tuple[str, str], tuple[str, str]] = {}
_counts: dict[tuple[str, str], int] = {}
"""(phase, engine) -> backends in it, the gauge's values."""
_phases_lock = threading.Lock()
_server: WSGIServer | None = None
_server_thread: threading.Thread | None = None


def set_backend_phase(namespace: str, name: str, engine: str, phase: str) -> None:
    """Record a backend's current engine and phase and update `turnout_backends`: the series it left and
    the one it joined (a count over every backend on each reconcile was quadratic in backends)."""
    labels = (str(phase), str(engine))
    with _phases_lock:
        before = _phases.get((namespace, name))
        _phases[(namespace, name)] = (str(engine), str(phase))
        if before is not None:
            _count((before[1], before[0]), -1)
        _count(labels, +1)


def forget_backend(namespace: str, name: str) -> None:
    """Drop a deleted backend from `turnout_backends`; unknown backends are ignored."""
    with _phases_lock:
        before = _phases.pop((namespace, name), None)
        if before is not None:
            _count((before[1], before[0]), -1)


def record_cutover(result: str, duration_seconds: float) -> None:
    """Count a finished cutover (`result`: one of CUTOVER_RESULTS) and observe its duration, in seconds."""
    CUTOVERS.labels(result=str(result)).inc()
    CUTOVER_DURATION.observe(duration_seconds)


def record_rollback(reason: str) -> None:
    """Count a rollback; `reason` is the condition's CamelCase reason (`CheckFailed`), not its message."""
    ROLLBACKS.labels(reason=str(reason)).inc()


def record_serving_failure(reason: str) -> None:
    """Count the serving revision found failing; `reason` is the condition's CamelCase reason."""
    SERVING_FAILURES.labels(reason=str(reason)).inc()


def record_switch_latency(seconds: float) -> None:
    """Observe the time from the new color proven to the selector patched, in seconds."""
    SWITCH_LATENCY.observe(seconds)


def record_reconcile() -> None:
    """Count a reconcile that ran to its end."""
    RECONCILES.inc()


def record_api_write(verb: str) -> None:
    API_WRITES.labels(verb=verb).inc()


def set_leading(leading: bool) -> None:
    LEADING.set(1 if leading else 0)


def record_reconcile_error(kind: str) -> None:
    """Count a failed reconcile; `kind` is the error's class name (`ApiException`, `TimeoutError`, ...)."""
    RECONCILE_ERRORS.labels(kind=str(kind)).inc()


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:
    """Serve every metric at `http://addr:port/metrics` from a daemon thread; `stop_metrics` ends it.

    Raises RuntimeError when already serving, OSError when the port cannot be bound.
    """
    global _server, _server_thread
    if _server is not None:
        raise RuntimeError(f"metrics are already served on port {_server.server_port}")
    _server, _server_thread = start_http_server(port, addr=addr)


def stop_metrics() -> None:
    """Stop the exporter started by `serve_metrics` and close its socket; idempotent."""
    global _server, _server_thread
    server, thread = _server, _server_thread
    _server, _server_thread = None, None
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join()


def _count(labels: tuple[str, str], change: int) -> None:
    """Add `change` to the backends in (phase, engine); a series that falls to 0 stays, at 0."""
    _counts[labels] = _counts.get(labels, 0) + change
    phase, engine = labels
    BACKENDS.labels(phase=phase, engine=engine).set(_counts[labels])


def record_benchmark(benchmarked: Benchmarked) -> None:
    """One benchmark gate judged: its verdict, and each pod's throughput and p95 TTFT."""
    BENCHMARKS.labels(verdict="passed" if benchmarked.passed else "failed").inc()
    for role, result in (("new", benchmarked.new), ("old", benchmarked.old)):
        if result is None:
            continue
        BENCHMARK_THROUGHPUT.labels(role=role).observe(result.output_tokens_per_second)
        if result.ttft_p95_seconds is not None:
            BENCHMARK_TTFT.labels(role=role).observe(result.ttft_p95_seconds)
