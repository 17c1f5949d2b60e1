"""Promotion on evidence, on a real control plane: the new revision is benchmarked against the serving
one before it takes traffic, and rolled back before the Service moves when it is not faster.

The simulators serve at the pace their pod annotations set (`sim.turnout.dev/tokens-per-second`,
`sim.turnout.dev/ttft`, `sim.turnout.dev/error-ratio`) and count the chat completions they were sent.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, ServiceMoves, vllm_spec
from turnout.api.backend import Backend

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

NEW_MODEL = "meta-llama/Llama-3.2-3B-Instruct"
# A small load: 20 answers of 16 tokens, 4 at a time, to each side.
LOAD = {"requests": 20, "concurrency": 4, "maxTokens": 16, "timeoutSeconds": 60}


def paced(
    gates: dict[str, Any], tokens_per_second: float, model: str = "meta-llama/Llama-3.1-8B-Instruct", **annotations: str
) -> dict[str, Any]:
    """A vLLM backend benchmarked with `gates`, whose pods answer at `tokens_per_second` per answer."""
    rollout = {**FAST_ROLLOUT, "benchmark": {**LOAD, **gates}}
    pods = {"sim.turnout.dev/tokens-per-second": str(tokens_per_second), "sim.turnout.dev/ttft": "0.01", **annotations}
    return vllm_spec(model, rollout=rollout, template={"podAnnotations": pods})


def streams_received(backends: Backends, color: str) -> int:
    """Streamed chat completions the color's one pod was sent since it started (the simulator's own
    count): the benchmark's requests, not the checks' smoke requests, which the serving color is
    sent every check interval while it is Healthy."""
    (ip,) = backends.pod_ips("chat", color)
    answer = httpx.get(f"http://{ip}:8000/sim/requests", timeout=5, trust_env=False)
    answer.raise_for_status()
    count: int = answer.json()["streamed"]
    return count


def test_a_revision_three_times_faster_is_promoted_with_both_numbers(
    operator: OperatorProcess, backends: Backends
) -> None:
    gates = {"minThroughputRatio": 2.5}
    # Answers long enough (about 11 tokens at 10 and 30 a second) that per-request overhead on a busy
    # machine does not eat the 3x: 1.1 s against 0.37 s.
    backends.create("chat", paced(gates, 10))
    backends.wait_phase("chat", "Healthy", timeout=120)
    blue_before = streams_received(backends, "blue")
    backends.replace_spec("chat", paced(gates, 30, NEW_MODEL))
    status = backends.wait_status("chat", timeout=180, activeColor="green", phase="Healthy")
    benchmark = status["benchmark"]
    assert benchmark["verdict"]["passed"], benchmark
    green, blue = benchmark["green"]["outputTokensPerSecond"], benchmark["blue"]["outputTokensPerSecond"]
    assert green / blue >= 2.5, benchmark
    assert benchmark["green"]["requests"] == benchmark["blue"]["requests"] == 20
    reasons = [reason for _, reason, _ in backends.events("chat")]
    assert "Benchmarked" in reasons
    # The serving pod was sent the benchmark's requests, once.
    assert streams_received(backends, "blue") - blue_before == 20


def test_a_slower_revision_is_rolled_back_before_the_service_moves(
    operator: OperatorProcess, backends: Backends
) -> None:
    gates = {"minThroughputRatio": 1.5}
    backends.create("chat", paced(gates, 60))
    backends.wait_phase("chat", "Healthy", timeout=120)
    new = paced(gates, 20, NEW_MODEL)
    with ServiceMoves.of(backends, "chat") as moves:
        backends.replace_spec("chat", new)
        status = backends.wait_failure("chat", timeout=180)
    assert moves.colors == [], moves.colors  # watched: the Service never moved
    assert status["lastFailureReason"] == "BenchmarkFailed"
    assert status["lastFailedRevision"] == Backend.parse("chat", backends.namespace, new).revision
    message = status["lastFailureMessage"]
    assert "output tokens/s" in message
    assert "benchmark.minThroughputRatio" in message
    assert status["activeColor"] == "blue"
    assert backends.service_selector("chat")["turnout.dev/color"] == "blue"


def test_a_revision_answering_errors_is_rolled_back(operator: OperatorProcess, backends: Backends) -> None:
    gates = {"maxErrorRatio": 0.01}
    backends.create("chat", paced(gates, 60))
    backends.wait_phase("chat", "Healthy", timeout=120)
    # No smoke request: the checks must pass so that the benchmark is what finds the errors.
    new = paced(gates, 60, NEW_MODEL, **{"sim.turnout.dev/error-ratio": "0.1"})
    new["rollout"]["checks"] = {**FAST_ROLLOUT["checks"], "smokeRequest": False}
    backends.replace_spec("chat", new)
    status = backends.wait_failure("chat", timeout=180)
    assert status["lastFailureReason"] == "BenchmarkFailed"
    assert "benchmark.maxErrorRatio" in status["lastFailureMessage"]


def test_a_benchmark_over_its_time_bound_fails_saying_so(operator: OperatorProcess, backends: Backends) -> None:
    gates = {"timeoutSeconds": 10, "maxTokens": 64}
    backends.create("chat", paced(gates, 60))
    backends.wait_phase("chat", "Healthy", timeout=120)
    # 64 tokens at 2 a second: one answer alone takes 32 s, past the 10 s bound.
    backends.replace_spec("chat", paced(gates, 2, NEW_MODEL))
    status = backends.wait_failure("chat", timeout=120)
    assert status["lastFailureReason"] == "BenchmarkFailed"
    assert "timeoutSeconds" in status["lastFailureMessage"]
