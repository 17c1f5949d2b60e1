"""plan(): each transition of the blue/green cutover, by named scenario, without a cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.unit.rollout.world import PASS, World, backend, fail, healthy_world
from turnout.api.backend import Backend, InvalidSpec
from turnout.api.status import Color, Phase
from turnout.rollout.actions import (
    ApplyClaim,
    ApplyDeployment,
    ApplyService,
    CutoverResult,
    ScaleDeployment,
)
from turnout.rollout.observed import FailureReason, PodFailure
from turnout.rollout.plan import check_due, check_target

BLUE, GREEN = Color.BLUE, Color.GREEN


def condition(world: World, type_: str) -> tuple[str, str, str]:
    found = [c for c in world.status.conditions if c.type == type_]
    assert found, f"no {type_} condition in {world.status.conditions}"
    return found[0].status, found[0].reason, found[0].message


def test_create_starts_the_first_revision_on_blue_without_a_service() -> None:
    world = World()
    world.step(backend())
    assert world.changes() == [ApplyDeployment(BLUE, 1)]
    assert world.status.phase == Phase.PROGRESSING
    assert world.status.preview_color == BLUE
    assert world.status.preview_revision == backend().revision
    assert condition(world, "Ready")[0] == "False"
    assert [e.reason for e in world.events()] == ["Progressing"]


def test_first_revision_is_verified_then_served_without_a_bake() -> None:
    desired = backend()
    world = World()
    world.step(desired)
    world.ready(BLUE)
    world.step(desired)
    assert world.status.phase == Phase.VERIFYING
    assert check_target(world.status) == BLUE
    world.step(desired, PASS)
    world.step(desired, PASS)
    assert world.changes() == []
    world.step(desired, PASS)
    assert world.changes() == [ApplyService(BLUE)]
    assert world.status.phase == Phase.HEALTHY
    assert world.status.active_color == BLUE
    assert world.status.active_revision == desired.revision
    assert world.status.previous_color is None
    assert condition(world, "Ready")[:2] == ("True", "Serving")
    assert condition(world, "Progressing")[0] == "False"
    assert world.last is not None
    assert world.last.finished is not None
    assert world.last.finished.result == CutoverResult.PROMOTED


def test_idle_backend_plans_no_writes() -> None:
    desired = backend()
    world = healthy_world(desired)
    before = world.status.model_dump()
    for _ in range(3):
        world.advance(60)
        world.step(desired)
        assert world.last is not None
        assert world.last.actions == ()
    assert world.status.model_dump() == before


def test_rollout_settings_and_replicas_do_not_start_a_cutover() -> None:
    world = healthy_world(backend())
    world.step(backend(rollout={"bakeSeconds": 5}))
    assert world.changes() == []
    world.step(backend(replicas=3))
    assert world.changes() == [ApplyDeployment(BLUE, 3)]
    assert world.status.preview_color is None


def test_model_change_proves_green_before_the_service_moves_then_bakes_and_scales_blue_down() -> None:
    world = healthy_world(backend())
    old_revision = world.status.active_revision
    new = backend(model={"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"})
    world.step(new)
    assert world.changes() == [ApplyDeployment(GREEN, 1)]
    assert world.service_color == BLUE
    world.advance(30)
    world.step(new)
    assert world.status.phase == Phase.PROGRESSING
    world.ready(GREEN)
    world.step(new)
    assert world.status.phase == Phase.VERIFYING
    world.step(new, PASS)
    world.step(new, PASS)
    assert world.service_color == BLUE
    world.step(new, PASS)
    assert world.changes() == [ApplyService(GREEN)]
    assert world.status.phase == Phase.BAKING
    assert (world.status.active_color, world.status.previous_color) == (GREEN, BLUE)
    assert world.status.previous_revision == old_revision
    assert check_target(world.status) == GREEN

    world.advance(60)
    world.step(new, PASS)
    assert world.status.phase == Phase.BAKING
    assert world.changes() == []
    world.advance(61)
    world.step(new, PASS)
    assert world.status.phase == Phase.HEALTHY
    assert world.changes() == []  # blue stays warm through the scale-down delay
    assert world.colors[BLUE].replicas == 1
    world.advance(31)
    world.step(new)
    assert world.changes() == [ScaleDeployment(BLUE, 0)]
    assert world.status.previous_color is None
    world.step(new)
    assert world.changes() == []


def test_service_moves_exactly_once_per_promotion() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"maxModelLen": 4096})
    moves = 0
    world.step(new)
    world.ready(GREEN)
    for _ in range(40):
        world.advance(5)
        world.step(new, PASS if check_target(world.status) else None)
        moves += sum(isinstance(a, ApplyService) for a in world.changes())
    assert moves == 1
    assert world.status.phase == Phase.HEALTHY


def test_green_lacking_the_model_is_rolled_back_before_the_switch() -> None:
    world = healthy_world(backend())
    new = backend(model={"name": "other/model", "servedName": "chat"})
    world.start_verifying(new)
    world.step(new, fail())
    world.step(new, fail())
    assert world.status.phase == Phase.VERIFYING
    world.step(new, fail())
    assert world.changes() == [ScaleDeployment(GREEN, 0)]
    assert world.service_color == BLUE
    assert world.status.phase == Phase.DEGRADED
    assert world.status.active_color == BLUE
    assert world.status.last_failed_revision == new.revision
    assert world.status.last_failure_reason == "CheckFailed"
    status, reason, message = condition(world, "RolledBack")
    assert (status, reason) == ("True", "CheckFailed")
    assert '/v1/models lacks "chat"' in message
    assert condition(world, "Ready")[0] == "True"  # blue still serves
    assert [e.reason for e in world.events()] == ["RolledBack"]


def test_a_passing_round_resets_the_failure_count() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"dtype": "bfloat16"})
    world.start_verifying(new)
    for check in (fail(), fail(), PASS, fail(), fail()):
        world.step(new, check)
    assert world.status.phase == Phase.VERIFYING


def test_green_failing_during_the_bake_puts_the_service_back_on_blue() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"dtype": "bfloat16"})
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, PASS)
    assert world.status.phase == Phase.BAKING
    world.advance(5)
    world.step(new, fail("pod chat-green-1 (10.244.0.7): GET /health: 503"))
    world.advance(5)
    world.step(new, fail("pod chat-green-1 (10.244.0.7): GET /health: 503"))
    assert world.service_color == GREEN
    world.advance(5)
    # A dead engine fails its readiness probe too: green has no Ready pod, nothing to drain.
    world.colors[GREEN] = replace(world.colors[GREEN], ready=0)
    world.step(new, fail("pod chat-green-1 (10.244.0.7): GET /health: 503"))
    assert world.changes() == [ApplyService(BLUE), ScaleDeployment(GREEN, 0)]
    assert world.status.previous_color is None
    assert world.status.active_color == BLUE
    assert world.status.phase == Phase.DEGRADED
    assert world.status.last_failed_revision == new.revision
    assert condition(world, "RolledBack")[:2] == ("True", "CheckFailed")


def test_image_pull_back_off_fails_fast() -> None:
    world = healthy_world(backend())
    new = backend(template={"image": "vllm/vllm-openai:no-such-tag"})
    world.step(new)
    world.fail_pods(GREEN, PodFailure("chat-green-1", FailureReason.IMAGE_PULL_BACK_OFF, "Back-off pulling image"))
    world.advance(5)
    world.step(new)
    assert world.changes() == [ScaleDeployment(GREEN, 0)]
    assert world.status.last_failure_reason == "ImagePullBackOff"
    assert "chat-green-1" in (world.status.last_failure_message or "")


def test_unschedulable_gets_a_grace_then_fails_with_the_schedulers_message() -> None:
    world = healthy_world(backend())
    new = backend(resources={"gpus": 16}, vllm={"tensorParallelSize": 16})
    world.step(new)
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    failure = PodFailure("chat-green-1", FailureReason.UNSCHEDULABLE, message, since=world.now)
    world.fail_pods(GREEN, failure)
    world.advance(5)
    world.step(new)
    assert world.status.phase == Phase.PROGRESSING
    world.advance(15)
    world.step(new)
    assert world.status.last_failure_reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in condition(world, "RolledBack")[2]


def test_never_ready_is_rolled_back_at_the_ready_timeout() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"maxModelLen": 2048})
    world.step(new)
    world.advance(599)
    world.step(new)
    assert world.status.phase == Phase.PROGRESSING
    world.advance(1)
    world.step(new)
    assert world.status.last_failure_reason == "ReadyTimeout"
    assert "0/1 pods Ready after 600 s" in condition(world, "RolledBack")[2]


def test_a_failed_revision_is_not_retried_until_the_spec_changes() -> None:
    world = healthy_world(backend())
    bad = backend(template={"image": "vllm/vllm-openai:no-such-tag"})
    world.step(bad)
    world.fail_pods(GREEN, PodFailure("chat-green-1", FailureReason.IMAGE_PULL_BACK_OFF, "Back-off"))
    world.step(bad)
    for _ in range(3):
        world.advance(60)
        world.step(bad)
        assert world.changes() == []
        assert world.status.phase == Phase.DEGRADED
    fixed = backend(template={"image": "vllm/vllm-openai:v0.32.1"})
    world.step(fixed)
    assert world.changes() == [ApplyDeployment(GREEN, 1)]
    assert world.status.phase == Phase.PROGRESSING
    assert condition(world, "Degraded")[0] == "False"


def test_auto_promote_off_waits_in_paused_until_promoted() -> None:
    world = healthy_world(backend(rollout={"autoPromote": False}))
    new = backend(rollout={"autoPromote": False}, vllm={"dtype": "half"})
    world.start_verifying(new)
    for _ in range(5):
        world.step(new, PASS)
    assert world.status.phase == Phase.PAUSED
    assert world.service_color == BLUE
    assert check_target(world.status) == GREEN
    world.promote = "some-other-revision"
    world.step(new, PASS)
    assert world.status.phase == Phase.PAUSED
    world.promote = new.revision
    world.step(new, PASS)
    assert world.changes() == [ApplyService(GREEN)]
    assert world.status.phase == Phase.BAKING


def test_paused_revision_failing_is_rolled_back() -> None:
    world = healthy_world(backend(rollout={"autoPromote": False}))
    new = backend(rollout={"autoPromote": False}, vllm={"dtype": "half"})
    world.start_verifying(new)
    for check in (PASS, PASS, PASS, fail(), fail(), fail()):
        world.step(new, check)
    assert world.status.phase == Phase.DEGRADED
    assert world.service_color == BLUE


def test_passes_of_an_abandoned_revision_do_not_count_for_the_next() -> None:
    world = healthy_world(backend())
    first = backend(vllm={"dtype": "half"})
    world.start_verifying(first)
    world.step(first, PASS)
    world.step(first, PASS)
    second = backend(vllm={"dtype": "bfloat16"})
    world.step(second)
    assert world.status.check_passes == 0
    world.ready(GREEN)
    world.step(second)
    world.step(second, PASS)
    assert world.service_color == BLUE


def test_spec_edited_mid_cutover_abandons_the_stale_preview() -> None:
    world = healthy_world(backend())
    first = backend(vllm={"dtype": "half"})
    world.step(first)
    world.ready(GREEN)
    world.advance(100)
    world.step(first)
    second = backend(vllm={"dtype": "bfloat16"})
    world.step(second)
    assert world.changes() == [ApplyDeployment(GREEN, 1)]
    assert world.colors[GREEN].revision == second.revision
    assert world.status.preview_revision == second.revision
    assert world.status.preview_started_at == world.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "Superseded" in [e.reason for e in world.events()]
    assert world.status.phase == Phase.PROGRESSING


def test_restart_after_an_unrecorded_switch_does_not_move_the_service_again() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"dtype": "half"})
    world.start_verifying(new)
    world.step(new, PASS)
    world.step(new, PASS)
    # The operator patched the Service and died before writing status.
    world.service_color = GREEN
    world.step(new)
    assert world.changes() == []
    assert world.status.phase == Phase.BAKING
    assert world.status.active_color == GREEN
    assert world.status.previous_color == BLUE


def test_recreate_scales_the_old_color_down_before_starting_the_new_one() -> None:
    old = backend(rollout={"strategy": "Recreate"})
    world = healthy_world(old)
    new = backend(rollout={"strategy": "Recreate"}, vllm={"dtype": "half"})
    world.step(new)
    assert world.changes() == [ScaleDeployment(BLUE, 0)]
    world.step(new)
    assert world.changes() == []  # blue's pods are still terminating
    world.pods_gone(BLUE)
    world.step(new)
    assert world.changes() == [ApplyDeployment(GREEN, 1)]


def test_recreate_failure_brings_the_old_color_back() -> None:
    old = backend(rollout={"strategy": "Recreate"})
    world = healthy_world(old)
    new = backend(rollout={"strategy": "Recreate"}, template={"image": "vllm/vllm-openai:bad"})
    world.step(new)
    world.pods_gone(BLUE)
    world.step(new)
    world.fail_pods(GREEN, PodFailure("chat-green-1", FailureReason.CRASH_LOOP_BACK_OFF, "back-off 10s"))
    world.step(new)
    assert ScaleDeployment(BLUE, 1) in world.changes()
    assert ScaleDeployment(GREEN, 0) in world.changes()


def test_first_revision_failing_is_reported_and_waited_for() -> None:
    desired = backend()
    world = World()
    world.step(desired)
    world.fail_pods(BLUE, PodFailure("chat-blue-1", FailureReason.CRASH_LOOP_BACK_OFF, "back-off 10s"))
    world.step(desired)
    assert world.status.phase == Phase.DEGRADED
    assert world.changes() == []
    assert [e.reason for e in world.events()] == ["CrashLoopBackOff"]
    world.step(desired)
    assert world.events() == []  # reported once
    world.ready(BLUE)
    world.step(desired)
    assert world.status.phase == Phase.VERIFYING


def test_invalid_spec_changes_nothing_and_is_reported_once() -> None:
    world = healthy_world(backend())
    error = InvalidSpec("spec.vllm.tensorParallelSize: 3 does not divide resources.gpus (2)")
    world.step(error)
    assert world.changes() == []
    assert condition(world, "InvalidSpec")[:2] == ("True", "InvalidSpec")
    assert [e.reason for e in world.events()] == ["InvalidSpec"]
    world.step(error)
    assert world.events() == []
    world.step(backend())
    assert condition(world, "InvalidSpec")[0] == "False"


def test_condition_transition_time_moves_only_when_status_changes() -> None:
    world = healthy_world(backend())
    ready_since = next(c for c in world.status.conditions if c.type == "Ready").last_transition_time
    world.advance(3600)
    world.step(backend(replicas=2))
    assert next(c for c in world.status.conditions if c.type == "Ready").last_transition_time == ready_since


def test_reverting_during_the_bake_returns_to_the_warm_old_color() -> None:
    original = backend()
    world = healthy_world(original)
    new = backend(vllm={"dtype": "half"})
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, PASS)
    assert world.status.phase == Phase.BAKING
    world.step(original)
    assert world.changes() == []  # blue is warm and already runs that revision
    assert world.status.preview_color == BLUE
    assert world.status.phase == Phase.VERIFYING


def test_auto_rollback_off_holds_a_failing_bake_until_aborted() -> None:
    world = healthy_world(backend(rollout={"autoRollback": False}))
    new = backend(rollout={"autoRollback": False}, vllm={"dtype": "half"})
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, PASS)
    for _ in range(3):
        world.step(new, fail())
    assert world.status.phase == Phase.DEGRADED
    assert world.service_color == GREEN
    world.advance(600)
    world.step(new)
    assert world.service_color == GREEN
    assert world.colors[BLUE].replicas == 1
    world.abort = new.revision
    world.step(new)
    assert world.service_color == BLUE
    assert world.status.last_failure_reason == "Aborted"


def test_model_claim_is_created_when_asked() -> None:
    world = World()
    world.step(backend(model={"name": "m", "servedName": "chat", "storage": {"create": True}}))
    assert ApplyClaim() in world.changes()
    world.step(backend(model={"name": "m", "servedName": "chat", "storage": {"create": True}}))
    assert ApplyClaim() not in world.changes()


def test_check_rounds_are_an_interval_apart_however_often_reconciles_run() -> None:
    world = healthy_world(backend())
    new = backend(vllm={"dtype": "half"})
    world.start_verifying(new)
    assert check_due(world.status, 5, world.now) == GREEN  # no round yet in this cutover
    world.step(new, PASS)
    assert check_due(world.status, 5, world.now) is None
    world.advance(4.9)
    assert check_due(world.status, 5, world.now) is None
    world.advance(0.1)
    assert check_due(world.status, 5, world.now) == GREEN


def test_requeue_follows_the_check_interval_during_a_cutover() -> None:
    world = healthy_world(backend())
    assert world.last is not None
    assert world.last.requeue_after >= 30
    new = backend(vllm={"dtype": "half"})
    world.step(new)
    assert world.last is not None
    assert world.last.requeue_after == 5
    world.advance(timedelta(seconds=1).total_seconds())


# -- drain: a rollback after the switch ------------------------------------------------------------


def baking_green(new: Backend) -> World:
    world = healthy_world(backend())
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, PASS)
    assert world.status.phase == Phase.BAKING
    return world


def test_a_rollback_after_the_switch_drains_the_serving_failed_color_through_the_scale_down_delay() -> None:
    new = backend(vllm={"dtype": "bfloat16"})
    world = baking_green(new)
    for _ in range(3):
        world.advance(5)
        world.step(new, fail())
    # Green's pods are Ready and answer; streams open on them go on while the Service is on blue.
    assert world.changes() == [ApplyService(BLUE)]
    assert (world.status.active_color, world.status.previous_color) == (BLUE, GREEN)
    assert world.status.previous_revision == new.revision == world.status.last_failed_revision
    assert world.last is not None
    assert world.last.requeue_after == 30  # rollout.scaleDownDelaySeconds
    world.advance(29)
    world.step(new)
    assert world.changes() == []
    world.advance(2)
    world.step(new)
    # Scaled to zero, its pods get their preStop pause and grace period: the drain.
    assert world.changes() == [ScaleDeployment(GREEN, 0)]
    assert world.status.previous_color is None
    assert world.status.phase == Phase.DEGRADED


def test_blue_failing_while_the_failed_green_drains_is_never_rolled_back_to_green() -> None:
    new = backend(vllm={"dtype": "bfloat16"})
    world = baking_green(new)
    for _ in range(3):
        world.advance(5)
        world.step(new, fail())
    assert world.status.previous_color == GREEN
    # The spec goes back to blue's revision, whose pods are checked again, and fail.
    old = backend()
    for _ in range(3):
        world.advance(5)
        world.step(old, fail("pod chat-blue-1 (10.244.0.5): GET /health: 503"))
    assert ApplyService(GREEN) not in world.changes()
    assert world.service_color == BLUE
    assert world.status.active_color == BLUE
    assert world.status.phase == Phase.DEGRADED


def test_a_crash_looping_color_is_scaled_down_at_once_on_rollback() -> None:
    new = backend(vllm={"dtype": "bfloat16"})
    world = baking_green(new)
    world.fail_pods(GREEN, PodFailure("chat-green-1", FailureReason.CRASH_LOOP_BACK_OFF, "back-off 10s"))
    world.advance(5)
    world.step(new)
    assert world.changes() == [ApplyService(BLUE), ScaleDeployment(GREEN, 0)]
    assert world.status.previous_color is None
    assert world.status.last_failure_reason == "CrashLoopBackOff"


def test_without_a_scale_down_delay_the_failed_color_drains_at_once() -> None:
    new = backend(vllm={"dtype": "bfloat16"}, rollout={"scaleDownDelaySeconds": 0})
    world = healthy_world(backend(rollout={"scaleDownDelaySeconds": 0}))
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, PASS)
    for _ in range(3):
        world.advance(5)
        world.step(new, fail())
    assert world.changes() == [ApplyService(BLUE), ScaleDeployment(GREEN, 0)]


def test_the_old_color_scales_down_only_after_the_scale_down_delay() -> None:
    new = backend(vllm={"dtype": "bfloat16"}, rollout={"bakeSeconds": 10, "scaleDownDelaySeconds": 45})
    world = healthy_world(backend(rollout={"bakeSeconds": 10, "scaleDownDelaySeconds": 45}))
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, PASS)
    world.advance(11)
    world.step(new, PASS)
    assert world.status.phase == Phase.HEALTHY
    world.advance(44)
    world.step(new)
    assert world.changes() == []
    world.advance(2)
    world.step(new)
    assert world.changes() == [ScaleDeployment(BLUE, 0)]
