"""The benchmark gate (`rollout.benchmark`) through the real reconcile: the new revision takes traffic
only when its numbers beat the gates; otherwise it is rolled back before the Service moves."""

from __future__ import annotations

from typing import Any

from tests.unit.fakes.operator import NAME, NAMESPACE, InProcessOperator, benchmark_result
from tests.unit.rollout.world import backend, spec
from turnout.api.status import Color
from turnout.kube.benchmark import run_benchmark

BLUE, GREEN = Color.BLUE, Color.GREEN
NEW_MODEL = {"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}


def gated(benchmark: dict[str, Any], **more: Any) -> dict[str, Any]:
    return spec(rollout={"benchmark": benchmark, **more.pop("rollout", {})}, **more)


def run_until(operator: InProcessOperator, phases: set[str], rounds: int = 30) -> None:
    for _ in range(rounds):
        for color in Color:
            operator.pods_ready(color)
        operator.advance(5)
        operator.reconcile()
        if operator.status().phase in phases:
            return
    raise AssertionError(f"never reached {phases}: {operator.status()}")


def test_a_revision_three_times_faster_is_promoted_with_both_sides_numbers(operator: InProcessOperator) -> None:
    gates = {"minThroughputRatio": 2.5}
    operator.start_healthy(gated(gates))
    operator.benchmarks.results = {BLUE: benchmark_result(40.0), GREEN: benchmark_result(120.0)}
    operator.edit(gated(gates, model=NEW_MODEL))
    run_until(operator, {"Benchmarking"})
    assert operator.service_color() == "blue"
    run_until(operator, {"Healthy"})
    status = operator.status()
    assert (status.active_color, status.active_revision) == (GREEN, backend(model=NEW_MODEL).revision)
    assert status.benchmark is not None
    assert status.benchmark.revision == backend(model=NEW_MODEL).revision
    assert status.benchmark.green is not None
    assert status.benchmark.blue is not None
    assert (status.benchmark.green.output_tokens_per_second, status.benchmark.blue.output_tokens_per_second) == (
        120.0,
        40.0,
    )
    assert status.benchmark.verdict is not None
    assert status.benchmark.verdict.passed
    assert operator.benchmarks.runs[-1] == (GREEN, BLUE)
    benchmarked = [e for e in operator.events if e.reason == "Benchmarked"][-1]
    assert "120.0 vs 40.0" in benchmarked.message


def test_a_slower_revision_is_rolled_back_before_the_service_moves(operator: InProcessOperator) -> None:
    gates = {"minThroughputRatio": 3.0}
    operator.start_healthy(gated(gates))
    operator.benchmarks.results = {BLUE: benchmark_result(38.0), GREEN: benchmark_result(41.2)}
    operator.edit(gated(gates, model=NEW_MODEL))
    run_until(operator, {"Degraded"})
    status = operator.status()
    assert (status.last_failure_reason, status.active_color) == ("BenchmarkFailed", BLUE)
    assert "output tokens/s 41.2 vs 38.0 (ratio 1.08 < 3.0, benchmark.minThroughputRatio)" in (
        status.last_failure_message or ""
    )
    assert operator.cluster.service_selectors == [{"turnout.dev/backend": NAME, "turnout.dev/color": "blue"}]
    deployment = operator.cluster.deployment(NAMESPACE, f"{NAME}-green")
    assert deployment is not None
    assert deployment["spec"]["replicas"] == 0


def test_errors_above_the_limit_fail_the_benchmark(operator: InProcessOperator) -> None:
    gates = {"maxErrorRatio": 0.01}
    operator.start_healthy(gated(gates))
    operator.benchmarks.results[GREEN] = benchmark_result(100.0, errors=10)
    operator.edit(gated(gates, model=NEW_MODEL))
    run_until(operator, {"Degraded"})
    status = operator.status()
    assert status.last_failure_reason == "BenchmarkFailed"
    assert "benchmark.maxErrorRatio" in (status.last_failure_message or "")


def test_a_first_revision_is_judged_by_the_absolute_gates(operator: InProcessOperator) -> None:
    operator.benchmarks.results[BLUE] = benchmark_result(5.0)
    operator.create(gated({"minOutputTokensPerSecond": 50}))
    run_until(operator, {"Degraded"})
    for _ in range(5):
        operator.advance(5)
        operator.reconcile()
    status = operator.status()
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert (status.phase, status.active_color, degraded.reason) == ("Degraded", None, "BenchmarkFailed")
    assert "output tokens/s 5.0 (< 50.0, benchmark.minOutputTokensPerSecond)" in degraded.message
    assert operator.benchmarks.runs == [(BLUE, None)]  # not run again until the spec changes
    assert operator.service_color() is None


def test_a_canary_is_benchmarked_before_its_first_step(operator: InProcessOperator) -> None:
    canary = {"strategy": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}}
    gates = {"minThroughputRatio": 2.0}
    operator.start_healthy(gated(gates, replicas=2, rollout=canary))
    operator.benchmarks.results = {BLUE: benchmark_result(40.0), GREEN: benchmark_result(30.0)}
    operator.edit(gated(gates, replicas=2, rollout=canary, model=NEW_MODEL))
    run_until(operator, {"Benchmarking"})
    assert "turnout.dev/color" in (operator.cluster.service(NAMESPACE, NAME) or {})["spec"]["selector"]
    run_until(operator, {"Degraded"})
    status = operator.status()
    assert status.last_failure_reason == "BenchmarkFailed"
    assert "CanaryStep" not in [e.reason for e in operator.events]


def test_prompts_from_a_configmap_that_does_not_exist_fail_the_benchmark_saying_so(
    operator: InProcessOperator,
) -> None:
    gates = {"prompts": {"configMapKeyRef": {"name": "prompts", "key": "chat.jsonl"}}}
    operator.start_healthy(gated({}))
    operator.benchmarker = run_benchmark
    operator.edit(gated(gates, model=NEW_MODEL))
    run_until(operator, {"Degraded"})
    message = operator.status().last_failure_message or ""
    assert "ConfigMap prompts, key chat.jsonl (rollout.benchmark.prompts) does not exist in namespace ml" in message


def test_prompts_that_are_not_jsonl_fail_the_benchmark_naming_the_line(operator: InProcessOperator) -> None:
    gates = {"prompts": {"configMapKeyRef": {"name": "prompts", "key": "chat.jsonl"}}}
    operator.cluster.put_config_map(NAMESPACE, "prompts", {"chat.jsonl": '{"messages": []}\nnot json\n'})
    operator.start_healthy(gated({}))
    operator.benchmarker = run_benchmark
    operator.edit(gated(gates, model=NEW_MODEL))
    run_until(operator, {"Degraded"})
    message = operator.status().last_failure_message or ""
    assert "ConfigMap prompts, key chat.jsonl (rollout.benchmark.prompts) line 1" in message
