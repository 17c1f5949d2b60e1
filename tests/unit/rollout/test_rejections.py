"""A write the API server refuses for good (a 422 on an env var name, a 403 from a quota) becomes a
condition and an Event; the revision is not tried again until the spec changes."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.rollout.world import World, backend, healthy_world
from turnout.api.backend import Backend
from turnout.api.status import Color, Phase
from turnout.rollout.actions import ApplyDeployment, ApplyService, ScaleDeployment
from turnout.rollout.observed import ApplyRejection
from turnout.rollout.plan import plan

BLUE, GREEN = Color.BLUE, Color.GREEN
INVALID_ENV = (
    'Deployment.apps "chat-green" is invalid: spec.template.spec.containers[0].env[2].name: Invalid value: "A=B"'
)


def refuse(world: World, desired: Backend, rejection: ApplyRejection) -> None:
    """What reconcile does when execute() reports a refusal: plan again with it, carry that plan out."""
    result = plan(desired, replace(world.observe(), rejected=rejection))
    for action in result.actions:
        world.carry_out(action, desired)
    world.status = result.status
    world.last = result


def condition(world: World, type_: str) -> tuple[str, str, str]:
    found = [c for c in world.status.conditions if c.type == type_]
    assert found, f"no {type_} condition in {world.status.conditions}"
    return found[0].status, found[0].reason, found[0].message


def test_a_refused_preview_is_rolled_back_with_the_api_servers_message_and_not_retried() -> None:
    world = healthy_world(backend())
    new = backend(template={"env": [{"name": "A=B", "value": "1"}]})
    world.step(new)
    assert world.changes() == [ApplyDeployment(GREEN, 1)]
    world.colors.pop(GREEN)  # the apply was refused: nothing of green exists
    refuse(world, new, ApplyRejection(GREEN, "Deployment chat-green", INVALID_ENV))
    assert world.service_color == BLUE
    assert world.status.phase == Phase.DEGRADED
    assert world.status.last_failed_revision == new.revision
    assert world.status.last_failure_reason == "ApplyFailed"
    status, reason, message = condition(world, "RolledBack")
    assert (status, reason) == ("True", "ApplyFailed")
    assert 'env[2].name: Invalid value: "A=B"' in message
    assert [e.reason for e in world.events()] == ["RolledBack"]
    for _ in range(3):
        world.advance(60)
        world.step(new)
        assert world.changes() == []  # not tried again until the spec changes
    fixed = backend(template={"env": [{"name": "A_B", "value": "1"}]})
    world.step(fixed)
    assert world.changes() == [ApplyDeployment(GREEN, 1)]


def test_a_refused_first_revision_is_reported_once_and_waits_for_a_new_spec() -> None:
    world = World()
    desired = backend(template={"env": [{"name": "A=B", "value": "1"}]})
    world.step(desired)
    world.colors.pop(BLUE)
    refuse(world, desired, ApplyRejection(BLUE, "Deployment chat-blue", INVALID_ENV))
    assert world.status.phase == Phase.DEGRADED
    assert condition(world, "Degraded")[:2] == ("True", "ApplyFailed")
    assert [e.reason for e in world.events()] == ["ApplyFailed"]
    for _ in range(3):
        world.advance(60)
        world.step(desired)
        assert world.changes() == []
        assert world.events() == []
    world.generation += 1
    world.step(backend())
    assert world.changes() == [ApplyDeployment(BLUE, 1)]


def test_a_refused_switch_leaves_the_service_on_the_old_color() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"dtype": "half"})
    world.start_verifying(new)
    refuse(world, new, ApplyRejection(None, "Service chat", "exceeded quota: services.loadbalancers=0"))
    assert world.service_color == BLUE
    assert ScaleDeployment(GREEN, 0) in world.changes()
    assert world.status.last_failure_reason == "ApplyFailed"


def test_a_refused_write_to_the_serving_color_is_not_repeated_for_the_same_spec() -> None:
    world = healthy_world(backend())
    world.generation += 1
    scaled = backend(replicas=3)
    world.step(scaled)
    assert world.changes() == [ApplyDeployment(BLUE, 3)]
    refuse(world, scaled, ApplyRejection(BLUE, "Deployment chat-blue", "exceeded quota: requests.nvidia.com/gpu"))
    assert condition(world, "Degraded")[:2] == ("True", "ApplyFailed")
    for _ in range(3):
        world.advance(60)
        world.step(scaled)
        assert world.changes() == []
        assert world.status.phase == Phase.DEGRADED
    world.generation += 1
    world.step(backend(replicas=2))
    assert world.changes() == [ApplyDeployment(BLUE, 2)]
    assert ApplyService(BLUE) not in world.changes()
