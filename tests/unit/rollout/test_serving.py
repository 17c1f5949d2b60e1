"""What happens to the revision that serves: it stays watched after its bake, never loses its
place to an unproven revision, and a failure is announced once."""

from __future__ import annotations

from dataclasses import replace

from tests.unit.rollout.world import PASS, World, backend, fail, healthy_world
from turnout.api.status import Color, Phase
from turnout.rollout.actions import ApplyDeployment, ApplyService, ScaleDeployment
from turnout.rollout.plan import check_due, check_target

BLUE, GREEN = Color.BLUE, Color.GREEN


def condition(world: World, type_: str) -> tuple[str, str, str]:
    found = [c for c in world.status.conditions if c.type == type_]
    assert found, f"no {type_} condition in {world.status.conditions}"
    return found[0].status, found[0].reason, found[0].message


def baking_world(**changes: object) -> tuple[World, object]:
    """Blue served the original spec; green now serves a new one and bakes."""
    world = healthy_world(backend(**changes))  # type: ignore[arg-type]
    new = backend(vllm={"dtype": "half"}, **changes)  # type: ignore[arg-type]
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, PASS)
    assert world.status.phase == Phase.BAKING
    return world, new


def test_a_healthy_backend_keeps_being_checked_and_a_passing_round_writes_nothing() -> None:
    desired = backend()
    world = healthy_world(desired)
    assert check_target(world.status) == BLUE
    before = world.status.model_dump()
    for _ in range(3):
        world.advance(60)
        world.step(desired, PASS)
        assert world.last is not None
        assert world.last.actions == ()
    assert world.status.model_dump() == before
    assert world.last is not None
    assert world.last.requeue_after == 60  # rollout.checks.healthyIntervalSeconds


def test_the_bake_does_not_end_while_the_latest_round_failed() -> None:
    world, new = baking_world()
    world.advance(119)
    world.step(new, PASS)
    world.advance(5)
    world.step(new, fail())  # the bake's time is up, but this round failed
    assert world.status.phase == Phase.BAKING
    world.advance(5)
    world.step(new, fail())
    assert world.status.phase == Phase.BAKING
    world.advance(5)
    world.step(new, fail())
    assert world.service_color == BLUE
    assert world.status.last_failure_reason == "CheckFailed"


def test_a_failed_round_at_the_end_of_the_bake_is_forgiven_only_by_a_passing_one() -> None:
    world, new = baking_world()
    world.advance(125)
    world.step(new, fail())
    assert world.status.phase == Phase.BAKING
    world.advance(5)
    world.step(new, PASS)
    assert world.status.phase == Phase.HEALTHY
    assert world.service_color == GREEN


def test_serving_revision_failing_after_the_bake_goes_back_to_the_warm_previous_color() -> None:
    world, new = baking_world()
    world.advance(121)
    world.step(new, PASS)
    assert world.status.phase == Phase.HEALTHY
    assert world.status.previous_color == BLUE  # warm for scaleDownDelaySeconds
    for _ in range(2):
        world.advance(5)
        world.step(new, fail("pod chat-green-1 (10.244.0.7): /health answered 503"))
        assert world.service_color == GREEN
    assert world.last is not None
    assert world.last.requeue_after == 5  # a failed round is confirmed at the quick interval
    world.advance(5)
    # A dead engine fails its readiness probe too: nothing on green to drain.
    world.colors[GREEN] = replace(world.colors[GREEN], ready=0)
    world.step(new, fail("pod chat-green-1 (10.244.0.7): /health answered 503"))
    assert world.changes() == [ApplyService(BLUE), ScaleDeployment(GREEN, 0)]
    assert world.status.active_color == BLUE
    assert world.status.last_failed_revision == new.revision  # type: ignore[attr-defined]
    assert world.last.serving_failed == "CheckFailed"
    assert condition(world, "RolledBack")[:2] == ("True", "CheckFailed")
    assert "/health answered 503" in condition(world, "RolledBack")[2]
    world.step(new)
    assert world.changes() == []  # not retried until the spec changes


def test_serving_revision_failing_once_the_previous_is_gone_is_degraded_not_ready_and_recovers() -> None:
    desired = backend()
    world = healthy_world(desired)
    for _ in range(3):
        world.advance(5)
        world.step(desired, fail("pod chat-blue-1 (10.244.0.5): /v1/models answered 503"))
    assert world.changes() == []  # nothing to go back to
    assert world.status.phase == Phase.DEGRADED
    assert condition(world, "Ready")[:2] == ("False", "CheckFailed")
    assert condition(world, "Degraded")[:2] == ("True", "CheckFailed")
    assert "/v1/models answered 503" in condition(world, "Degraded")[2]
    assert [e.reason for e in world.events()] == ["CheckFailed"]
    assert world.last is not None
    assert world.last.serving_failed == "CheckFailed"
    for _ in range(3):
        world.advance(5)
        world.step(desired, fail("pod chat-blue-1 (10.244.0.5): /v1/models answered 503"))
        assert world.events() == []  # announced once
        assert world.last.serving_failed is None
    world.advance(30)
    world.step(desired)  # a reconcile without a round keeps the verdict
    assert world.status.phase == Phase.DEGRADED
    world.advance(5)
    world.step(desired, PASS)
    assert world.status.phase == Phase.HEALTHY
    assert condition(world, "Ready")[:2] == ("True", "Serving")
    assert [e.reason for e in world.events()] == ["Healthy"]


def test_scaled_to_zero_a_new_revision_waits_and_the_service_never_selects_it_unproven() -> None:
    world = healthy_world(backend())
    idle = backend(replicas=0)
    world.step(idle)
    assert world.changes() == [ApplyDeployment(BLUE, 0)]
    new = backend(replicas=0, vllm={"dtype": "half"})
    for _ in range(3):
        world.advance(60)
        world.step(new)
        assert world.service_color == BLUE
        assert ApplyService(GREEN) not in world.changes()
    assert world.status.phase == Phase.PENDING
    assert condition(world, "Progressing")[:2] == ("True", "ScaledToZero")
    assert world.status.active_revision == backend().revision
    scaled_up = backend(replicas=1, vllm={"dtype": "half"})
    world.step(scaled_up)
    assert world.changes() == [ApplyDeployment(GREEN, 1)]
    world.ready(GREEN)
    world.step(scaled_up)
    assert world.status.phase == Phase.VERIFYING
    assert world.service_color == BLUE


def test_a_first_revision_at_zero_replicas_is_not_served_unproven() -> None:
    world = World()
    world.step(backend(replicas=0))
    assert world.service_exists is False
    assert world.status.phase == Phase.PENDING
    assert world.status.active_color is None


def test_a_lost_switch_record_then_a_spec_change_never_retemplates_the_serving_color() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"dtype": "half"})
    world.start_verifying(new)
    world.step(new, PASS)
    world.step(new, PASS)
    before = world.status.model_copy(deep=True)
    world.step(new, PASS)
    assert world.service_color == GREEN
    world.status = before  # the Service moved, but the status write was lost
    newer = backend(vllm={"dtype": "bfloat16"})
    world.step(newer)
    assert all(not (isinstance(a, ApplyDeployment) and a.color == GREEN) for a in world.changes())
    assert world.status.active_color == GREEN
    assert world.status.active_revision == new.revision
    world.step(newer)
    assert world.changes() == [ApplyDeployment(BLUE, 1)]  # the newest spec goes to the idle color
    assert world.service_color == GREEN


def test_a_first_revision_failing_its_checks_announces_verifying_once() -> None:
    desired = backend()
    world = World()
    world.step(desired)
    world.ready(BLUE)
    reasons: list[str] = []
    for _ in range(30):
        world.advance(5)
        due = check_due(world.status, 5, world.now)
        world.step(desired, fail() if due else None)
        reasons += [e.reason for e in world.events()]
    assert reasons.count("Verifying") == 1, reasons
    assert reasons.count("CheckFailed") == 1, reasons


def test_the_serving_color_is_not_checked_against_a_spec_it_does_not_run() -> None:
    world = healthy_world(backend())
    assert check_target(world.status, backend().revision) == BLUE
    # The spec now names another engine (whose revision failed, say): its checks say nothing about blue.
    other = backend(engine="ollama", model={"name": "llama3:8b", "servedName": "chat"}, resources={"gpus": 0})
    assert check_target(world.status, other.revision) is None
    assert check_due(world.status, 5, world.now, other.revision) is None


def roll_back_and_lose_the_record(world: World, new: object) -> None:
    """Green fails its rounds until the Service goes back to blue, and that reconcile's status write is lost."""
    for _ in range(2):
        world.advance(5)
        world.step(new, fail())  # type: ignore[arg-type]
    before = world.status.model_copy(deep=True)
    world.advance(5)
    world.step(new, fail())  # type: ignore[arg-type]
    assert world.service_color == BLUE
    world.status = before


def test_a_lost_rollback_record_then_a_spec_change_never_retemplates_the_serving_color() -> None:
    world, new = baking_world()
    roll_back_and_lose_the_record(world, new)
    newer = backend(vllm={"dtype": "bfloat16"})
    world.step(newer)
    assert all(not (isinstance(a, ApplyDeployment) and a.color == BLUE) for a in world.changes())
    assert world.status.active_color == BLUE
    assert world.status.last_failed_revision == new.revision  # type: ignore[attr-defined]
    world.step(newer)
    assert world.changes() == [ApplyDeployment(GREEN, 1)]  # the newest spec goes to the idle color


def test_a_rollback_after_the_bake_whose_record_was_lost_is_not_undone() -> None:
    world, new = baking_world()
    world.advance(121)
    world.step(new, PASS)
    assert world.status.phase == Phase.HEALTHY
    roll_back_and_lose_the_record(world, new)
    world.step(new)
    assert ApplyService(GREEN) not in world.changes()
    assert world.status.active_color == BLUE


def test_an_abort_before_the_cutover_started_fails_the_revision_without_starting_it() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"dtype": "half"})
    world.abort = new.revision
    world.step(new)
    assert world.changes() == []
    assert world.status.last_failure_reason == "Aborted"
    assert world.service_color == BLUE
