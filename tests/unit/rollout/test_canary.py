"""The canary strategy: its pod arithmetic, and its stories through the real reconcile on the fake cluster."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.fakes.operator import NAME, NAMESPACE, InProcessOperator, PodTraffic
from tests.unit.rollout.world import backend, spec
from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.checks.prometheus import QueryAnswer
from turnout.rollout.canary import Split, pod_split, scale_toward
from turnout.rollout.observed import CheckOutcome, ColorState

BLUE, GREEN = Color.BLUE, Color.GREEN
NEW_MODEL = {"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}
OTHER_MODEL = {"name": "meta-llama/Llama-3.2-1B-Instruct", "servedName": "chat"}


def canary_spec(steps: list[dict[str, Any]], replicas: int = 4, max_surge: int = 1, **more: Any) -> dict[str, Any]:
    rollout = {"strategy": "Canary", "canary": {"steps": steps, "maxSurge": max_surge}}
    return spec(replicas=replicas, rollout=rollout, **more)


STEPS = [{"setWeight": 25}, {"setWeight": 50}, {"setWeight": 100}]


# -- the arithmetic --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "weight", "max_surge", "expected"),
    [
        (4, 25, 1, Split(1, 3)),
        (4, 50, 1, Split(2, 2)),
        (4, 25, 0, Split(1, 3)),
        (10, 10, 1, Split(1, 9)),
        (1, 10, 1, Split(1, 1)),  # one replica: both colors run one pod, half the traffic each
        (4, 10, 1, Split(1, 4)),  # the closest to 10 % that 5 pods allow
        (4, 33, 1, Split(2, 3)),  # never below the 4 pods clients had
        (4, 0, 1, Split(0, 4)),
        (4, 100, 1, Split(4, 1)),  # all on the canary, the surge keeps a stable pod warm
        (4, 100, 0, Split(4, 0)),
    ],
)
def test_pod_split(replicas: int, weight: int, max_surge: int, expected: Split) -> None:
    assert pod_split(replicas, weight, max_surge) == expected


@given(st.integers(1, 60), st.integers(1, 99), st.integers(0, 8))
def test_a_split_keeps_the_capacity_within_the_surge_and_is_the_closest_possible(
    replicas: int, weight: int, max_surge: int
) -> None:
    if replicas == 1 and max_surge == 0:
        return  # refused by validation: a canary of one replica needs a surge
    split = pod_split(replicas, weight, max_surge)
    assert 1 <= split.canary <= replicas
    assert 1 <= split.stable <= replicas
    assert replicas <= split.canary + split.stable <= replicas + max_surge
    closest = min(
        abs(100 * c / (c + s) - weight)
        for c in range(1, replicas + 1)
        for s in range(1, replicas + 1)
        if replicas <= c + s <= replicas + max_surge
    )
    assert abs(split.share() - weight) == pytest.approx(closest)


class Controller:
    """Pods of two Deployments: they start one turn after being asked for, are Ready the turn after,
    and take a turn to terminate (while they still hold their GPU)."""

    def __init__(self, canary: int, stable: int) -> None:
        self.want = {"canary": canary, "stable": stable}
        self.starting = {"canary": 0, "stable": 0}
        self.ready = {"canary": canary, "stable": stable}
        self.terminating = {"canary": 0, "stable": 0}

    def state(self, side: str) -> ColorState:
        pods = self.starting[side] + self.ready[side] + self.terminating[side]
        return ColorState(exists=True, revision="r", replicas=self.want[side], ready=self.ready[side], pods=pods)

    def pods(self) -> int:
        return sum(self.state(side).pods for side in self.want)

    def turn(self) -> None:
        for side, wanted in self.want.items():
            self.terminating[side] = 0
            self.ready[side] += self.starting[side]
            self.starting[side] = 0
            have = self.ready[side]
            if wanted > have:
                self.starting[side] = wanted - have
            elif wanted < have:
                self.terminating[side] = have - wanted
                self.ready[side] = wanted


@given(st.integers(1, 12), st.integers(0, 3), st.lists(st.integers(1, 100), min_size=1, max_size=4))
def test_scaling_toward_each_step_never_runs_more_pods_than_the_surge_allows(
    replicas: int, max_surge: int, weights: list[int]
) -> None:
    if replicas == 1 and max_surge == 0:
        return
    capacity = replicas + max_surge
    world = Controller(0, replicas)
    for weight in sorted(set(weights)):
        target = pod_split(replicas, weight, max_surge)
        for _ in range(4 * replicas + 8):
            now = scale_toward(target, world.state("canary"), world.state("stable"), capacity)
            world.want = {"canary": now.canary, "stable": now.stable}
            assert world.pods() <= capacity
            world.turn()
            assert world.pods() <= capacity
        assert (world.want["canary"], world.want["stable"]) == (target.canary, target.stable), weight
        assert world.ready == {"canary": target.canary, "stable": target.stable}


# -- the stories ---------------------------------------------------------------------------


def settle(operator: InProcessOperator, *, until: str | None = None, rounds: int = 40) -> None:
    """Reconcile every 5 s while the controllers run and every pod becomes Ready, until the phase is
    `until` (or `rounds` run out)."""
    for _ in range(rounds):
        for color in Color:
            operator.pods_ready(color)
        operator.advance(5)
        operator.reconcile()
        if until is not None and operator.status().phase == until:
            return
    assert until is None, f"never reached {until}: {operator.status()}"


def service_selector(operator: InProcessOperator) -> dict[str, str]:
    service = operator.cluster.service(NAMESPACE, NAME)
    assert service is not None
    return dict(service["spec"]["selector"])


def pods(operator: InProcessOperator, color: Color) -> int:
    """Pods of the color that exist, terminating ones included."""
    return len(operator.cluster._pods_of(NAMESPACE, f"{NAME}-{color.value}"))


def replicas(operator: InProcessOperator, color: Color) -> int:
    found = operator.cluster.deployment(NAMESPACE, f"{NAME}-{color.value}")
    return 0 if found is None else int(found["spec"]["replicas"])


def test_a_canary_moves_traffic_in_its_steps_then_switches(operator: InProcessOperator) -> None:
    operator.start_healthy(canary_spec(STEPS))
    first_events = len(operator.events)
    operator.edit(canary_spec(STEPS, model=NEW_MODEL))
    shares: list[tuple[int, int | None, dict[str, str]]] = []
    for _ in range(60):
        for color in Color:
            operator.pods_ready(color)
        operator.advance(5)
        operator.reconcile()
        status = operator.status()
        if status.canary is not None and status.phase == "Canary":
            shares.append((status.canary.weight, status.canary.traffic_share, service_selector(operator)))
        if status.phase == "Healthy":
            break
    status = operator.status()
    assert (status.phase, status.active_color, status.active_revision) == (
        "Healthy",
        GREEN,
        backend(model=NEW_MODEL).revision,
    )
    assert service_selector(operator) == {"turnout.dev/backend": NAME, "turnout.dev/color": "green"}
    # Each step's share of Ready pods; then the canary grows to all replicas before the switch.
    in_effect = {weight: share for weight, share, selector in shares if "turnout.dev/color" not in selector}
    assert {weight: in_effect[weight] for weight in (25, 50)} == {25: 25, 50: 50}
    assert set(in_effect) <= {25, 50, 100}
    events = operator.events[first_events:]
    assert [e.message for e in events if e.reason == "CanaryStep"] == [
        "step 1/3: setWeight 25",
        "step 2/3: setWeight 50",
    ]
    assert [e.reason for e in events if e.reason != "CanaryStep"] == [
        "Progressing",
        "Verifying",
        "CanaryStarted",
        "Switched",
        "Healthy",
    ]


def test_max_surge_zero_never_runs_more_pods_than_replicas(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 25}, {"setWeight": 50}, {"setWeight": 75}]
    operator.start_healthy(canary_spec(steps, max_surge=0))
    operator.edit(canary_spec(steps, max_surge=0, model=NEW_MODEL))
    most = 0
    for _ in range(80):
        for color in Color:
            operator.pods_ready(color)
            most = max(most, pods(operator, BLUE) + pods(operator, GREEN))
        operator.advance(5)
        operator.reconcile()
        most = max(most, pods(operator, BLUE) + pods(operator, GREEN))
        if operator.status().phase == "Healthy":
            break
    assert operator.status().active_color == GREEN
    assert most == 4


def test_a_pause_without_seconds_waits_for_a_promotion_of_that_step(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    operator.start_healthy(canary_spec(steps))
    operator.edit(canary_spec(steps, model=NEW_MODEL))
    revision = backend(model=NEW_MODEL).revision
    settle(operator, until="Paused")
    status = operator.status()
    assert status.canary is not None
    assert (status.canary.step, status.canary.weight) == (1, 25)
    paused = next(e for e in operator.events if e.reason == "Paused")
    assert f"turnout.dev/promote={revision}/1" in paused.message
    settle(operator, rounds=5)
    assert operator.status().phase == "Paused"  # time alone does not promote
    operator.cluster.annotate_backend(NAMESPACE, NAME, "turnout.dev/promote", f"{revision}/1")
    settle(operator, until="Paused")
    status = operator.status()
    assert status.canary is not None
    assert (status.canary.step, status.canary.weight) == (3, 50)
    operator.cluster.annotate_backend(NAMESPACE, NAME, "turnout.dev/promote", revision)  # every pause of it
    settle(operator, until="Healthy")
    assert operator.status().active_revision == revision


def test_a_timed_pause_moves_on_by_itself(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 25}, {"pause": {"seconds": 60}}, {"setWeight": 50}]
    operator.start_healthy(canary_spec(steps))
    operator.edit(canary_spec(steps, model=NEW_MODEL))
    settle(operator, until="Canary")
    while (canary := operator.status().canary) is not None and canary.step < 1:
        settle(operator, rounds=1)
    entered = operator.now
    while (canary := operator.status().canary) is not None and canary.step == 1:
        settle(operator, rounds=1)
    assert (operator.now - entered).total_seconds() >= 60


def test_abort_mid_step_puts_all_traffic_back_on_stable(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    operator.start_healthy(canary_spec(steps))
    operator.edit(canary_spec(steps, model=NEW_MODEL))
    settle(operator, until="Paused")
    assert "turnout.dev/color" not in service_selector(operator)
    operator.cluster.annotate_backend(NAMESPACE, NAME, "turnout.dev/abort", backend(model=NEW_MODEL).revision)
    operator.advance(1)
    operator.reconcile()
    assert service_selector(operator) == {"turnout.dev/backend": NAME, "turnout.dev/color": "blue"}
    assert (replicas(operator, GREEN), replicas(operator, BLUE)) == (0, 4)
    status = operator.status()
    assert (status.phase, status.last_failure_reason, status.canary) == ("Degraded", "Aborted", None)
    assert status.last_failed_revision == backend(model=NEW_MODEL).revision
    # The write that took the traffic back came first.
    assert (operator.last_writes[0].verb, operator.last_writes[0].kind) == ("apply", "Service")


def test_failing_checks_during_a_step_roll_the_canary_back(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    operator.start_healthy(canary_spec(steps))
    operator.edit(canary_spec(steps, model=NEW_MODEL))
    settle(operator, until="Paused")
    operator.checks.answer = CheckOutcome(passed=False, message="pod chat-green-x: 503")
    settle(operator, until="Degraded")
    status = operator.status()
    assert (status.last_failure_reason, status.active_color) == ("CheckFailed", BLUE)
    assert service_selector(operator)["turnout.dev/color"] == "blue"
    assert "pod chat-green-x: 503" in (status.last_failure_message or "")


def test_a_spec_change_mid_canary_restarts_it_from_the_first_step(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    operator.start_healthy(canary_spec(steps))
    operator.edit(canary_spec(steps, model=NEW_MODEL))
    settle(operator, until="Paused")
    operator.edit(canary_spec(steps, model=OTHER_MODEL))
    operator.advance(1)
    operator.reconcile()
    status = operator.status()
    assert (status.phase, status.canary, status.preview_revision) == (
        "Progressing",
        None,
        backend(model=OTHER_MODEL).revision,
    )
    assert service_selector(operator)["turnout.dev/color"] == "blue"
    assert "Superseded" in [e.reason for e in operator.last_events]
    settle(operator, until="Paused")
    assert operator.status().canary is not None


def test_an_operator_restarted_at_a_step_resumes_at_that_step(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}]
    operator.start_healthy(canary_spec(steps))
    operator.edit(canary_spec(steps, model=NEW_MODEL))
    settle(operator, until="Paused")
    operator.restart()
    operator.advance(5)
    operator.reconcile()
    after = operator.status()
    assert after.canary is not None
    assert (after.phase, after.canary.step, after.canary.weight) == ("Paused", 1, 25)
    assert [w for w in operator.last_writes if w.kind != "InferenceBackend"] == []


def test_a_first_revision_is_promoted_as_in_blue_green(operator: InProcessOperator) -> None:
    operator.start_healthy(canary_spec(STEPS))
    status = operator.status()
    assert (status.active_color, status.canary) == (BLUE, None)
    assert "CanaryStep" not in [e.reason for e in operator.events]


# -- judged on real traffic ------------------------------------------------------------------


def analysed(analysis: dict[str, Any], **more: Any) -> dict[str, Any]:
    """A canary of 4 replicas at 50 %, then a pause until promoted, judged with `analysis`."""
    steps = [{"setWeight": 50}, {"pause": {}}]
    built = canary_spec(steps, **more)
    built["rollout"]["canary"]["analysis"] = analysis
    return built


def test_a_canary_answering_5xx_is_rolled_back_with_the_numbers(operator: InProcessOperator) -> None:
    operator.start_healthy(analysed({"maxErrorRatio": 0.05}))
    operator.traffic.colors[GREEN] = PodTraffic(error_ratio=0.2)
    operator.edit(analysed({"maxErrorRatio": 0.05}, model=NEW_MODEL))
    settle(operator, until="Degraded")
    status = operator.status()
    assert (status.last_failure_reason, status.active_color) == ("AnalysisFailed", BLUE)
    assert service_selector(operator)["turnout.dev/color"] == "blue"
    assert "canary 5xx 20.0% of " in (status.last_failure_message or "")
    assert "> 5.0% (analysis.maxErrorRatio)" in (status.last_failure_message or "")
    rolled_back = next(e for e in operator.events if e.reason == "RolledBack")
    assert "AnalysisFailed" in rolled_back.message


def test_a_canary_slower_than_the_limit_is_rolled_back_with_both_latencies(operator: InProcessOperator) -> None:
    limits = {"maxLatencyRatio": 1.5}
    operator.start_healthy(analysed(limits))
    operator.traffic.colors[GREEN] = PodTraffic(latency_seconds=0.9)
    operator.traffic.colors[BLUE] = PodTraffic(latency_seconds=0.2)
    operator.edit(analysed(limits, model=NEW_MODEL))
    settle(operator, until="Degraded")
    message = operator.status().last_failure_message or ""
    assert operator.status().last_failure_reason == "AnalysisFailed"
    assert "analysis.maxLatencyRatio" in message
    assert "vs stable" in message


def test_too_little_traffic_holds_the_step_instead_of_passing_it(operator: InProcessOperator) -> None:
    operator.start_healthy(analysed({"minRequests": 500}))
    operator.traffic.colors[GREEN] = PodTraffic(requests_per_scrape=10)
    operator.edit(analysed({"minRequests": 500}, model=NEW_MODEL))
    settle(operator, until="Canary")
    settle(operator, rounds=10)
    status = operator.status()
    assert status.canary is not None
    assert (status.phase, status.canary.step, status.canary.analysis_passed) == ("Canary", 0, False)
    assert status.canary.analysis is not None
    assert status.canary.analysis.outcome == "Wait"
    assert "/500 requests on the canary so far" in status.canary.analysis.message
    operator.traffic.colors[GREEN] = PodTraffic(requests_per_scrape=200)
    settle(operator, until="Paused")  # the next step: the weight was judged and passed
    status = operator.status()
    assert status.canary is not None
    assert status.canary.step == 1


def test_metrics_that_cannot_be_read_make_the_step_wait(operator: InProcessOperator) -> None:
    operator.start_healthy(analysed({}))
    operator.traffic.unreadable = "connection refused"
    operator.edit(analysed({}, model=NEW_MODEL))
    settle(operator, until="Canary")
    settle(operator, rounds=10)
    status = operator.status()
    assert status.canary is not None
    assert (status.phase, status.canary.step) == ("Canary", 0)
    assert status.canary.analysis is not None
    assert "connection refused" in status.canary.analysis.message


ERRORS_QUERY = 'sum(rate(http_requests_total{status="5xx",revision="{{ canaryRevision }}"}[{{ interval }}]))'


def with_metric(query: str = ERRORS_QUERY, **bounds: float) -> dict[str, Any]:
    """Analysis limits with one Prometheus metric, `errors`, in range `bounds` (default: at most 0.05)."""
    prometheus = {"address": "http://prometheus.monitoring:9090", "query": query}
    return {"metrics": [{"name": "errors", "prometheus": prometheus, "thresholdRange": bounds or {"max": 0.05}}]}


def asked_query(operator: InProcessOperator, new: dict[str, Any]) -> str:
    """ERRORS_QUERY as turnout fills it in for the canary of spec `new`."""
    parsed = Backend.parse(NAME, NAMESPACE, new)
    interval = f"{parsed.spec.rollout.checks.interval_seconds}s"
    return ERRORS_QUERY.replace("{{ canaryRevision }}", parsed.revision).replace("{{ interval }}", interval)


def test_a_prometheus_metric_out_of_range_rolls_the_canary_back_with_its_value(operator: InProcessOperator) -> None:
    operator.start_healthy(analysed(with_metric()))
    new = analysed(with_metric(), model=NEW_MODEL)
    operator.prometheus.answers[asked_query(operator, new)] = QueryAnswer(0.2)
    operator.edit(new)
    settle(operator, until="Degraded")
    status = operator.status()
    assert (status.last_failure_reason, status.active_color) == ("AnalysisFailed", BLUE)
    assert "metric errors = 0.2 > max 0.05 (thresholdRange of analysis.metrics)" in (status.last_failure_message or "")
    assert ("http://prometheus.monitoring:9090", asked_query(operator, new)) in operator.prometheus.asked


def test_a_prometheus_metric_in_range_lets_the_step_pass(operator: InProcessOperator) -> None:
    operator.start_healthy(analysed(with_metric()))
    new = analysed(with_metric(), model=NEW_MODEL)
    operator.prometheus.answers[asked_query(operator, new)] = QueryAnswer(0.01)
    operator.edit(new)
    settle(operator, until="Canary")
    seen = []
    for _ in range(40):
        if operator.status().phase != "Canary":
            break
        settle(operator, rounds=1)
        analysis = operator.status().canary.analysis  # type: ignore[union-attr]
        seen.append((analysis.message, analysis.metrics) if analysis else None)
    assert operator.status().phase == "Paused"
    assert any(
        found
        and "metric errors = 0.01 within [, 0.05]" in found[0]
        and [(m.name, m.value) for m in found[1]] == [("errors", 0.01)]
        for found in seen
    ), seen


def test_a_prometheus_metric_without_data_holds_the_step(operator: InProcessOperator) -> None:
    operator.start_healthy(analysed(with_metric()))
    operator.edit(analysed(with_metric(), model=NEW_MODEL))
    settle(operator, until="Canary")
    settle(operator, rounds=10)
    status = operator.status()
    assert status.canary is not None
    assert status.canary.analysis is not None
    assert (status.phase, status.canary.step, status.canary.analysis_passed) == ("Canary", 0, False)
    assert status.canary.analysis.outcome == "Wait"
    assert "metric errors: no data from Prometheus yet" in status.canary.analysis.message


def test_a_prometheus_that_cannot_answer_fails_the_rounds(operator: InProcessOperator) -> None:
    operator.start_healthy(analysed(with_metric()))
    new = analysed(with_metric(), model=NEW_MODEL)
    operator.prometheus.answers[asked_query(operator, new)] = QueryAnswer(None, "Prometheus refused the connection")
    operator.edit(new)
    settle(operator, until="Degraded")
    status = operator.status()
    assert status.last_failure_reason == "AnalysisFailed"
    assert status.last_failure_message == "metric errors: Prometheus refused the connection"


def test_an_ollama_canary_is_judged_by_its_checks_alone(operator: InProcessOperator) -> None:
    ollama = {"engine": "ollama", "resources": {"gpus": 0}}
    operator.start_healthy(analysed({}, **ollama, model={"name": "llama3:8b", "servedName": "chat"}))
    operator.traffic.unreadable = "never read: Ollama serves no metrics"
    operator.edit(analysed({}, **ollama, model={"name": "llama3.2:3b", "servedName": "chat"}))
    settle(operator, until="Paused")
    status = operator.status()
    assert status.canary is not None
    assert status.canary.analysis is not None
    assert status.canary.analysis.outcome == "NotMeasured"
    assert "judged by turnout's checks alone" in status.canary.analysis.message


# -- through an HTTPRoute --------------------------------------------------------------------

ROUTE = "chat-route"
OTHER_REF = {"name": "fallback", "port": 8000, "weight": 5}


def routed(steps: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    built = canary_spec(steps, **more)
    built["rollout"]["canary"]["traffic"] = {"httpRoute": {"name": ROUTE}}
    return built


def put_route(operator: InProcessOperator) -> None:
    """A route whose first rule holds both color Services and another ref; a second rule of its own."""
    refs = [{"name": "chat-blue", "port": 8000}, {"name": "chat-green", "port": 8000, "weight": 0}, OTHER_REF]
    rules = [{"backendRefs": refs}, {"matches": [{"path": {"value": "/admin"}}], "backendRefs": [OTHER_REF]}]
    operator.cluster.put_http_route(NAMESPACE, ROUTE, {"parentRefs": [{"name": "gateway"}], "rules": rules})


def weights(operator: InProcessOperator) -> dict[str, int | None]:
    route = operator.cluster.http_route(NAMESPACE, ROUTE)
    assert route is not None
    return {ref["name"]: ref.get("weight") for ref in route["spec"]["rules"][0]["backendRefs"]}


def test_a_routed_canary_sets_exactly_its_two_weights_step_by_step(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 10}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]
    put_route(operator)
    operator.start_healthy(routed(steps))
    assert weights(operator) == {"chat-blue": 100, "chat-green": 0, "fallback": 5}
    assert operator.cluster.service(NAMESPACE, "chat-green") is not None
    operator.edit(routed(steps, model=NEW_MODEL))
    revision = backend(model=NEW_MODEL).revision
    settle(operator, until="Paused")
    status = operator.status()
    assert status.canary is not None
    assert (status.canary.step, status.canary.traffic_share) == (1, 10)
    assert weights(operator) == {"chat-blue": 90, "chat-green": 10, "fallback": 5}
    assert service_selector(operator)["turnout.dev/color"] == "blue"  # the stable Service stays on stable
    operator.cluster.annotate_backend(NAMESPACE, NAME, "turnout.dev/promote", f"{revision}/1")
    settle(operator, until="Paused")
    assert weights(operator) == {"chat-blue": 40, "chat-green": 60, "fallback": 5}
    operator.cluster.annotate_backend(NAMESPACE, NAME, "turnout.dev/promote", revision)
    settle(operator, until="Healthy")
    assert weights(operator) == {"chat-blue": 0, "chat-green": 100, "fallback": 5}
    assert service_selector(operator)["turnout.dev/color"] == "green"
    route = operator.cluster.http_route(NAMESPACE, ROUTE)
    assert route is not None
    assert route["spec"]["rules"][1] == {"matches": [{"path": {"value": "/admin"}}], "backendRefs": [OTHER_REF]}


def test_abort_sets_the_canary_weight_to_zero(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    put_route(operator)
    operator.start_healthy(routed(steps))
    operator.edit(routed(steps, model=NEW_MODEL))
    settle(operator, until="Paused")
    assert weights(operator)["chat-green"] == 50
    operator.cluster.annotate_backend(NAMESPACE, NAME, "turnout.dev/abort", backend(model=NEW_MODEL).revision)
    operator.advance(1)
    operator.reconcile()
    assert weights(operator) == {"chat-blue": 100, "chat-green": 0, "fallback": 5}
    assert operator.last_writes[0].kind == "HTTPRoute"
    assert operator.status().last_failure_reason == "Aborted"


def test_a_missing_route_is_reported_and_the_canary_waits_for_it(operator: InProcessOperator) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    operator.start_healthy(routed(steps))
    routed_condition = next(c for c in operator.status().conditions if c.type == "Routed")
    assert (routed_condition.status, routed_condition.reason) == ("False", "RouteUnusable")
    assert "HTTPRoute chat-route does not exist in namespace ml" in routed_condition.message
    assert [e.reason for e in operator.events].count("RouteUnusable") == 1
    operator.edit(routed(steps, model=NEW_MODEL))
    settle(operator, until="Canary")
    settle(operator, rounds=5)
    status = operator.status()
    assert status.canary is not None
    assert (status.phase, status.canary.step, status.canary.traffic_share) == ("Canary", 0, None)
    put_route(operator)
    settle(operator, until="Paused")
    assert weights(operator)["chat-green"] == 50
    routed_condition = next(c for c in operator.status().conditions if c.type == "Routed")
    assert (routed_condition.status, routed_condition.message) == ("True", "HTTPRoute chat-route: blue 50, green 50")


def test_a_route_without_refs_of_turnout_is_refused_with_what_to_change(operator: InProcessOperator) -> None:
    operator.cluster.put_http_route(NAMESPACE, ROUTE, {"rules": [{"backendRefs": [OTHER_REF]}]})
    operator.start_healthy(routed([{"setWeight": 50}]))
    routed_condition = next(c for c in operator.status().conditions if c.type == "Routed")
    assert routed_condition.status == "False"
    assert "chat-blue" in routed_condition.message
    assert "chat-green" in routed_condition.message
    route = operator.cluster.http_route(NAMESPACE, ROUTE)
    assert route is not None
    assert route["spec"]["rules"] == [{"backendRefs": [OTHER_REF]}]  # untouched


def test_an_embedding_canary_of_another_dimension_never_gets_traffic(operator: InProcessOperator) -> None:
    embedding = {"name": "nomic-embed-text", "servedName": "embed", "task": "embedding"}
    operator.checks.answer = CheckOutcome(passed=True, embedding_dimension=768)
    operator.start_healthy(canary_spec(STEPS, model=embedding))
    operator.edit(canary_spec(STEPS, model={**embedding, "name": "mxbai-embed-large"}))
    operator.checks.answer = CheckOutcome(passed=True, embedding_dimension=1024)
    settle(operator, until="Degraded")
    status = operator.status()
    assert (status.last_failure_reason, status.active_color) == ("EmbeddingDimensionChanged", BLUE)
    assert "dimension 1024" in (status.last_failure_message or "")
    assert status.canary is None
    assert service_selector(operator) == {"turnout.dev/backend": NAME, "turnout.dev/color": "blue"}


def test_a_spec_change_mid_canary_that_cannot_fit_puts_all_traffic_back_and_frees_the_canary(
    operator: InProcessOperator,
) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    operator.start_healthy(canary_spec(steps))
    operator.edit(canary_spec(steps, model=NEW_MODEL))
    settle(operator, until="Paused")
    facts = {**OTHER_MODEL, "architecture": {"parameters": 70_553_706_496, "layers": 80, "kvHeads": 8, "headDim": 128}}
    operator.edit(canary_spec(steps, model=facts, resources={"gpus": 1, "gpuMemory": "80Gi"}))
    operator.advance(1)
    operator.reconcile()
    status = operator.status()
    assert (status.phase, status.preview_color, status.active_color) == ("Degraded", None, Color.BLUE)
    assert "InsufficientGPUMemory" in [e.reason for e in operator.last_events]
    assert service_selector(operator)["turnout.dev/color"] == "blue"
    assert replicas(operator, Color.GREEN) == 0


OLLAMA = {"engine": "ollama", "resources": {"gpus": 0}}


def ollama_analysed(model: str, **bounds: float) -> dict[str, Any]:
    return analysed(with_metric(**bounds), **OLLAMA, model={"name": model, "servedName": "chat"})


@pytest.mark.parametrize(
    ("answer", "phase", "outcome", "words"),
    [
        (QueryAnswer(0.01), "Paused", None, None),
        (QueryAnswer(None), "Canary", "Wait", "metric errors: no data from Prometheus yet"),
        (QueryAnswer(0.3), "Degraded", None, "metric errors = 0.3 > max 0.05 (thresholdRange of analysis.metrics)"),
    ],
    ids=["in range: the step passes", "no data: the step waits", "out of range: rolled back"],
)
def test_an_ollama_canary_with_prometheus_metrics_is_judged_by_them(
    operator: InProcessOperator, answer: QueryAnswer, phase: str, outcome: str | None, words: str | None
) -> None:
    operator.start_healthy(ollama_analysed("llama3:8b"))
    operator.traffic.unreadable = "never read: Ollama serves no metrics"
    new = ollama_analysed("llama3.2:3b")
    operator.prometheus.answers[asked_query(operator, new)] = answer
    operator.edit(new)
    settle(operator, until=phase)
    if phase == "Canary":
        settle(operator, rounds=10)
    status = operator.status()
    assert status.phase == phase
    if phase == "Degraded":
        assert status.last_failure_reason == "AnalysisFailed"
        assert words in (status.last_failure_message or "")
        return
    assert status.canary is not None
    assert status.canary.step == (1 if phase == "Paused" else 0)
    if outcome is not None:
        assert status.canary.analysis is not None
        assert status.canary.analysis.outcome == outcome
        assert f"{words} (engine ollama serves no metrics of its own)" == status.canary.analysis.message
