"""plan() dispatches on rollout.strategy, and phases are announced once per transition."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.unit.rollout.world import PASS, World, backend, healthy_world
from turnout.api.status import Color, Phase
from turnout.rollout.bluegreen import BlueGreen, Recreate
from turnout.rollout.plan import check_target, strategy_step

BLUE, GREEN = Color.BLUE, Color.GREEN


@pytest.mark.parametrize(("strategy", "step"), [("BlueGreen", BlueGreen), ("Recreate", Recreate)])
def test_each_strategy_has_its_own_step(strategy: str, step: type) -> None:
    world = World()
    desired = backend(rollout={"strategy": strategy})
    assert type(strategy_step(desired, world.observe())) is step


def test_a_whole_cutover_announces_each_phase_once() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"dtype": "half"})
    reasons: Counter[str] = Counter()
    world.step(new)
    reasons.update(e.reason for e in world.events())
    world.ready(GREEN)
    for _ in range(60):
        world.advance(5)
        world.step(new, PASS if check_target(world.status) else None)
        reasons.update(e.reason for e in world.events())
    assert world.status.phase == Phase.HEALTHY
    assert reasons == Counter({"Progressing": 1, "Verifying": 1, "Switched": 1, "Healthy": 1, "ScaledDown": 1}), reasons


def test_first_revision_announces_healthy_once_without_a_bake() -> None:
    desired = backend()
    world = World()
    world.step(desired)
    world.ready(BLUE)
    world.step(desired)
    reasons: list[str] = []
    for _ in range(6):
        world.step(desired, PASS if check_target(world.status) else None)
        reasons += [e.reason for e in world.events()]
    assert reasons == ["Switched", "Healthy"]


def test_paused_says_how_to_promote_with_the_plugin_and_the_annotation_it_sets() -> None:
    world = healthy_world(backend(rollout={"autoPromote": False}))
    new = backend(rollout={"autoPromote": False}, vllm={"dtype": "half"})
    world.start_verifying(new)
    messages: list[str] = []
    for _ in range(5):
        world.step(new, PASS)
        messages += [e.message for e in world.events() if e.reason == "Paused"]
    assert messages == [
        f"revision {new.revision} proven on green; waiting for promotion: "
        f"kubectl turnout promote chat (sets turnout.dev/promote={new.revision})"
    ]


def test_abort_names_the_annotation_that_did_it() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"dtype": "half"})
    world.step(new)
    world.abort = new.revision
    world.step(new)
    assert world.status.last_failure_reason == "Aborted"
    assert world.status.last_failure_message == "aborted by the turnout.dev/abort annotation"


def test_an_unauthenticated_load_balancer_is_announced_once_and_held_in_a_condition() -> None:
    exposed = backend(
        engine="ollama",
        model={"name": "llama3:8b", "servedName": "chat"},
        resources={"gpus": 0},
        service={"type": "LoadBalancer"},
    )
    world = World()
    world.step(exposed)
    assert [e.reason for e in world.events()] == ["UnauthenticatedLoadBalancer", "Progressing"]
    found = next(c for c in world.status.conditions if c.type == "Exposed")
    assert (found.status, found.reason) == ("True", "UnauthenticatedLoadBalancer")
    assert "engine ollama has no authentication" in found.message
    world.step(exposed)
    assert "UnauthenticatedLoadBalancer" not in [e.reason for e in world.events()]
    keyed = backend(service={"type": "LoadBalancer"}, vllm={"apiKeySecretRef": {"name": "key", "key": "token"}})
    world.step(keyed)
    assert next(c for c in world.status.conditions if c.type == "Exposed").status == "False"
    world.step(backend(service={"type": "LoadBalancer"}))
    assert "set spec.vllm.apiKeySecretRef" in next(c for c in world.status.conditions if c.type == "Exposed").message


def test_a_cluster_ip_backend_carries_no_exposed_condition() -> None:
    world = healthy_world(backend())
    assert [c.type for c in world.status.conditions if c.type == "Exposed"] == []
