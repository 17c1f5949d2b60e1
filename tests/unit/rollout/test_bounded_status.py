"""Whatever an engine answers or a spec holds, a message in status or an Event is bounded, and so is
the status patch: a failure that could not be recorded would leave nothing for on-call to read."""

from __future__ import annotations

import json

import pytest

from tests.unit.rollout.world import World, backend, fail, healthy_world
from turnout.api.backend import InvalidSpec
from turnout.api.status import Color, ConditionType, InferenceBackendStatus
from turnout.rollout.actions import RecordEvent
from turnout.rollout.conditions import MAX_MESSAGE_BYTES, bounded, set_condition
from turnout.rollout.plan import plan

# Far over the API server's request limit (3 MiB), as a model id an engine can list.
HUGE = "m" * 2_000_000


def json_size(text: str) -> int:
    return len(json.dumps(text)) - 2


def status_patch_size(status: InferenceBackendStatus) -> int:
    return len(json.dumps(status.model_dump(mode="json", by_alias=True)))


@pytest.mark.parametrize(
    "message",
    [HUGE, "é" * 5000, "模型" * 2000, "🚂" * 2000, "\x01" * 5000, "line\n" * 1000],
    ids=["ascii", "accented", "cjk", "emoji", "controls", "lines"],
)
def test_a_message_takes_at_most_one_kib_as_json(message: str) -> None:
    cut = bounded(message)
    assert json_size(cut) <= MAX_MESSAGE_BYTES
    assert cut.endswith("…")
    assert not any(ord(c) < 0x20 for c in cut)


def test_a_short_message_is_kept_and_control_characters_become_spaces() -> None:
    assert bounded('pod chat-green-1: /v1/models lacks "chat"') == 'pod chat-green-1: /v1/models lacks "chat"'
    assert bounded("back-off 10s\nrestarting\tfailed") == "back-off 10s restarting failed"
    exact = "x" * MAX_MESSAGE_BYTES
    assert bounded(exact) == exact


def test_set_condition_bounds_the_message() -> None:
    (condition,) = set_condition([], ConditionType.DEGRADED, True, "CheckFailed", HUGE, generation=1, now=World().now)
    assert json_size(condition.message) <= MAX_MESSAGE_BYTES


def test_a_rollback_for_a_huge_check_message_writes_a_small_status_and_event() -> None:
    desired = backend()
    world = healthy_world(desired)
    new = backend(vllm={"dtype": "half"})
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, fail(f'pod chat-green-1 (10.244.0.7): /v1/models lacks "chat" (serves "{HUGE}")'))
    assert world.status.last_failed_revision == new.revision
    assert world.service_color == Color.BLUE
    assert json_size(world.status.last_failure_message or "") <= MAX_MESSAGE_BYTES
    assert status_patch_size(world.status) < 8 * 1024
    (event,) = world.events()
    assert event.reason == "RolledBack"
    assert json_size(event.message) <= MAX_MESSAGE_BYTES


def test_an_invalid_spec_with_a_huge_message_writes_a_small_status_and_event() -> None:
    world = World()
    result = plan(InvalidSpec("spec.vllm.extraArgs[0]: each item is one argv word " + HUGE), world.observe())
    assert status_patch_size(result.status) < 8 * 1024
    events = [action for action in result.actions if isinstance(action, RecordEvent)]
    assert events
    assert all(json_size(event.message) <= MAX_MESSAGE_BYTES for event in events)
