"""The plan tests' `World` against the real glue: the same story, told to `World` and to `reconcile` on the
fake cluster, must give the same status after every step, and the cluster must look the way `World` thinks.

`World` carries out actions the way it believes the executor and the cluster do; this is where that belief
is checked, so the scenarios of test_plan.py say something about the operator that runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.fakes.operator import NAME, NAMESPACE, InProcessOperator
from tests.unit.rollout.world import PASS, World, fail, spec
from turnout.api.backend import Backend, InvalidSpec
from turnout.api.labels import BACKEND_LABEL
from turnout.api.status import Color
from turnout.kube.observe import color_states, pod_failures
from turnout.reconcile import parse_backend
from turnout.rollout.observed import CheckOutcome
from turnout.rollout.plan import check_due

BLUE, GREEN = Color.BLUE, Color.GREEN
SPECS: dict[str, dict[str, Any]] = {
    "original": spec(),
    "new model": spec(model={"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}),
    "half precision": spec(vllm={"dtype": "half"}),
    "two replicas": spec(replicas=2),
    "manual promotion": spec(rollout={"autoPromote": False}, vllm={"dtype": "bfloat16"}),
    "recreate": spec(rollout={"strategy": "Recreate"}, vllm={"maxModelLen": 4096}),
    "canary": spec(
        replicas=2,
        rollout={"strategy": "Canary", "canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
        vllm={"maxModelLen": 2048},
    ),
    "ollama": spec(engine="ollama", model={"name": "llama3:8b", "servedName": "chat"}, resources={"gpus": 0}),
    "invalid": spec(vllm={"tensorParallelSize": 3}),
}


class Twins:
    """One story told twice: to `World` (plan alone) and to the real reconcile on the fake cluster."""

    def __init__(self, operator: InProcessOperator) -> None:
        self.operator = operator
        self.world = World()
        self.desired: Backend | InvalidSpec | None = None

    def edit(self, name: str) -> None:
        if self.desired is None:
            self.operator.create(SPECS[name])
        else:
            self.operator.edit(SPECS[name])
        body = self.operator.cluster.backend(NAMESPACE, NAME)
        self.world.generation = body["metadata"]["generation"]
        self.desired = parse_backend(body)

    def reconcile(self, answer: CheckOutcome) -> None:
        """Both reconcile once; a check round runs in both or in neither, with the cluster's outcome."""
        assert self.desired is not None
        checks = self.operator.checks
        checks.answer = answer
        rounds = len(checks.rounds)
        self.operator.reconcile()
        ran = checks.rounds[rounds:]
        interval = self.desired.spec.rollout.checks.interval_seconds if isinstance(self.desired, Backend) else 0
        due = (
            check_due(self.world.status, interval, self.world.now, self.desired.revision)
            if isinstance(self.desired, Backend)
            else None
        )
        assert (due is not None) == bool(ran), (due, ran)
        self.world.step(self.desired, ran[0].outcome if ran else None)
        # The controllers act between two reconciles: a color scaled down has no Ready pod left, as World says.
        self.operator.cluster.run_controllers()
        self.sync_pods()
        self.assert_alike()

    def checked(self, answer: CheckOutcome) -> None:
        """A check interval passes, then both reconcile."""
        self.advance(5)
        self.reconcile(answer)

    def ready(self, color: Color | None) -> None:
        """The pods of `color` (None: of every color) become Ready."""
        for each in [color] if color else list(self.world.colors):
            if each in self.world.colors:
                self.operator.pods_ready(each)
                self.world.ready(each)
        self.sync_pods()

    def fail(self, color: Color) -> None:
        if color in self.world.colors:
            self.operator.pods_fail(color, "CrashLoopBackOff", "back-off 10s")
            failures = [f for pod in self.pods(color) for f in pod_failures(pod)]
            self.world.fail_pods(color, *failures)
            self.sync_pods()

    def advance(self, seconds: float) -> None:
        self.operator.advance(seconds)
        self.world.advance(seconds)

    def pods(self, color: Color) -> list[dict[str, Any]]:
        return self.operator.cluster.current_pods(NAMESPACE, f"{NAME}-{color.value}")

    def sync_pods(self) -> None:
        """Pods terminate when the controllers say: World's count of them is the test's to set."""
        observed = self.observed_colors()
        for color, state in self.world.colors.items():
            if observed[color].pods == 0:
                self.world.pods_gone(color)
            else:
                self.world.colors[color] = replace(state, pods=observed[color].pods)

    def observed_colors(self) -> dict[Color, Any]:
        cluster = self.operator.cluster
        selector = f"{BACKEND_LABEL}={NAME}"
        return color_states(cluster.list_deployments(NAMESPACE, selector), cluster.list_pods(NAMESPACE, selector))

    def assert_alike(self) -> None:
        cluster_status = self.operator.status().model_dump()
        assert cluster_status == self.world.status.model_dump()
        assert self.operator.service_color() == (self.world.service_color if self.world.service_exists else None)
        observed = self.observed_colors()
        assert observed.keys() == self.world.colors.keys()
        for color, believed in self.world.colors.items():
            seen = observed[color]
            assert (seen.revision, seen.replicas, seen.ready) == (believed.revision, believed.replicas, believed.ready)
            assert [f.reason for f in seen.failures] == [f.reason for f in believed.failures], color


@pytest.fixture
def twins() -> Iterator[Twins]:
    with InProcessOperator() as operator:
        yield Twins(operator)


def test_a_cutover_and_a_rolled_back_one_read_the_same_in_world_and_in_the_cluster(twins: Twins) -> None:
    twins.edit("original")
    twins.reconcile(PASS)
    twins.ready(BLUE)
    for _ in range(4):
        twins.advance(5)
        twins.reconcile(PASS)
    assert twins.world.status.phase == "Healthy"
    twins.edit("new model")
    twins.reconcile(PASS)
    twins.ready(GREEN)
    for _ in range(30):
        twins.advance(5)
        twins.reconcile(PASS)
    assert (twins.world.status.phase, twins.operator.service_color()) == ("Healthy", "green")
    twins.edit("half precision")
    twins.reconcile(PASS)
    twins.ready(BLUE)
    for _ in range(4):
        twins.advance(5)
        twins.reconcile(fail())
    assert twins.world.status.phase == "Degraded"
    assert twins.world.status.last_failure_reason == "CheckFailed"


# Drawn with these weights: one edit in about fifteen steps, so that stories get somewhere between edits.
_BETWEEN_EDITS: list[tuple[str, Any]] = [
    *[("advance", seconds) for seconds in (5, 30, 130, 700)],  # first: a failing story shrinks toward it
    *[("ready", color) for color in (BLUE, GREEN, None, None, None)],
    *[("fail", color) for color in (BLUE, GREEN)],
    *[("checked", answer) for answer in (PASS, fail())] * 2,
    *[("checked", PASS)] * 8,
]
STEPS: list[tuple[str, Any]] = [*_BETWEEN_EDITS * 5, *[("edit", name) for name in sorted(SPECS)]]


@settings(max_examples=30, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.sampled_from(sorted(SPECS)), story=st.lists(st.sampled_from(STEPS), min_size=40, max_size=100))
def test_any_story_reads_the_same_in_world_and_in_the_cluster(first: str, story: list[tuple[str, Any]]) -> None:
    with InProcessOperator() as operator:
        twins = Twins(operator)
        twins.edit(first)
        twins.reconcile(PASS)
        for verb, argument in story:
            getattr(twins, verb)(argument)
