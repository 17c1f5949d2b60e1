"""turnout's metrics: the phase gauge follows each backend, and the exporter serves every name."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.fakes.operator import benchmark_result
from turnout import metrics
from turnout.api.spec import Engine
from turnout.api.status import Phase
from turnout.rollout.actions import Benchmarked


def backends(phase: str, engine: str) -> float:
    value = REGISTRY.get_sample_value("turnout_backends", {"phase": phase, "engine": engine})
    assert value is not None, f"no turnout_backends series for {phase}/{engine}"
    return value


@pytest.fixture
def forgetting() -> Iterator[list[tuple[str, str]]]:
    """Backends the test registers, forgotten afterwards so the gauge is left as found."""
    registered: list[tuple[str, str]] = []
    yield registered
    for namespace, name in registered:
        metrics.forget_backend(namespace, name)


def test_phase_counts_follow_each_backend(forgetting: list[tuple[str, str]]) -> None:
    forgetting += [("metrics-test", "chat"), ("metrics-test", "embed"), ("other", "chat")]
    progressing, healthy = backends("Progressing", "vllm"), backends("Healthy", "vllm")

    metrics.set_backend_phase("metrics-test", "chat", "vllm", "Progressing")
    metrics.set_backend_phase("metrics-test", "embed", "vllm", "Progressing")
    metrics.set_backend_phase("other", "chat", "ollama", "Healthy")
    assert backends("Progressing", "vllm") == progressing + 2

    metrics.set_backend_phase("metrics-test", "chat", "vllm", "Healthy")
    metrics.set_backend_phase("metrics-test", "chat", "vllm", "Healthy")  # the same phase again counts once
    assert backends("Progressing", "vllm") == progressing + 1
    assert backends("Healthy", "vllm") == healthy + 1

    # An engine switch moves the backend to the other engine's series.
    metrics.set_backend_phase("metrics-test", "embed", "ollama", "Healthy")
    assert backends("Progressing", "vllm") == progressing
    assert backends("Healthy", "ollama") >= 2

    metrics.forget_backend("metrics-test", "chat")
    metrics.forget_backend("metrics-test", "chat")  # deleting twice is harmless
    assert backends("Healthy", "vllm") == healthy


def test_every_phase_and_cutover_result_reads_zero_before_anything_happens() -> None:
    # A fresh interpreter: in this one, other tests have already moved the metrics.
    exposition = (
        "import turnout.metrics, prometheus_client, sys; sys.stdout.buffer.write(prometheus_client.generate_latest())"
    )
    text = subprocess.run(
        [sys.executable, "-c", exposition], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    for engine in Engine:
        for phase in Phase:
            labels = (("engine", engine.value), ("phase", phase.value))
            assert samples.get(("turnout_backends", labels)) == 0, f"turnout_backends{{{phase}, {engine}}}"
    for result in metrics.CUTOVER_RESULTS:
        assert samples.get(("turnout_cutovers_total", (("result", result),))) == 0, result


def test_recorders_move_their_metrics() -> None:
    def value(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    before = {
        "promoted": value("turnout_cutovers_total", {"result": "promoted"}),
        "duration": value("turnout_cutover_duration_seconds_count"),
        "slow": value("turnout_cutover_duration_seconds_bucket", {"le": "600.0"}),
        "rollback": value("turnout_rollbacks_total", {"reason": "CheckFailed"}),
        "switch": value("turnout_switch_latency_seconds_count"),
        "error": value("turnout_reconcile_errors_total", {"kind": "ApiException"}),
    }
    metrics.record_cutover("promoted", 420.0)
    metrics.record_rollback("CheckFailed")
    metrics.record_switch_latency(0.05)
    metrics.record_reconcile_error("ApiException")

    assert value("turnout_cutovers_total", {"result": "promoted"}) == before["promoted"] + 1
    assert value("turnout_cutover_duration_seconds_count") == before["duration"] + 1
    assert value("turnout_cutover_duration_seconds_bucket", {"le": "600.0"}) == before["slow"] + 1
    assert value("turnout_rollbacks_total", {"reason": "CheckFailed"}) == before["rollback"] + 1
    assert value("turnout_switch_latency_seconds_count") == before["switch"] + 1
    assert value("turnout_reconcile_errors_total", {"kind": "ApiException"}) == before["error"] + 1


def test_a_serving_revision_found_failing_is_counted_by_reason() -> None:
    labels = {"reason": "CheckFailed"}
    before = REGISTRY.get_sample_value("turnout_serving_failures_total", labels) or 0.0
    metrics.record_serving_failure("CheckFailed")
    assert REGISTRY.get_sample_value("turnout_serving_failures_total", labels) == before + 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_serve_metrics_exposes_every_name_and_stops() -> None:
    port = free_port()
    metrics.serve_metrics(port, addr="127.0.0.1")
    try:
        with pytest.raises(RuntimeError, match="already served"):
            metrics.serve_metrics(port, addr="127.0.0.1")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        metrics.stop_metrics()
    for name in (
        "turnout_backends",
        "turnout_cutovers_total",
        "turnout_cutover_duration_seconds_bucket",
        "turnout_rollbacks_total",
        "turnout_check_latency_seconds_bucket",
        "turnout_reconcile_errors_total",
        "turnout_reconciles_total",
        "turnout_serving_failures_total",
        "turnout_switch_latency_seconds_bucket",
    ):
        assert f"# TYPE {name.removesuffix('_bucket').removesuffix('_total')}" in text, name
    # Stopped means nothing listens any more.
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))
    metrics.stop_metrics()  # idempotent


def test_a_benchmark_is_counted_by_verdict_with_each_pods_numbers() -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    failed = sample("turnout_benchmarks_total", verdict="failed")
    new_count = sample("turnout_benchmark_output_tokens_per_second_count", role="new")
    old_sum = sample("turnout_benchmark_output_tokens_per_second_sum", role="old")
    metrics.record_benchmark(Benchmarked(passed=False, new=benchmark_result(41.2), old=benchmark_result(38.0)))
    assert sample("turnout_benchmarks_total", verdict="failed") == failed + 1
    assert sample("turnout_benchmark_output_tokens_per_second_count", role="new") == new_count + 1
    assert sample("turnout_benchmark_output_tokens_per_second_sum", role="old") == pytest.approx(old_sum + 38.0)
