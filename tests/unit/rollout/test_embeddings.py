"""plan() for an embedding model: the length of its vectors is recorded per revision, and a new
revision whose vectors have another length is refused before it takes traffic, unless allowed."""

from __future__ import annotations

from typing import Any

from tests.unit.rollout.world import World, backend
from turnout.api.backend import Backend
from turnout.api.status import Color, Phase
from turnout.rollout.actions import ApplyService, ScaleDeployment
from turnout.rollout.observed import CheckOutcome

BLUE, GREEN = Color.BLUE, Color.GREEN


def embedding(name: str = "nomic-embed-text", **changes: Any) -> Backend:
    return backend(model={"name": name, "servedName": "embed", "task": "embedding"}, **changes)


def vectors(dimension: int) -> CheckOutcome:
    return CheckOutcome(passed=True, embedding_dimension=dimension)


def serving(desired: Backend, dimension: int) -> World:
    world = World()
    world.step(desired)
    world.ready(BLUE)
    world.step(desired)
    for _ in range(3):
        world.step(desired, vectors(dimension))
    assert world.status.phase == Phase.HEALTHY
    return world


def dimensions(world: World) -> dict[str, int | None]:
    return {found.revision: found.embedding_dimension for found in world.status.served_models}


def test_the_serving_revisions_dimension_is_in_the_status() -> None:
    first = embedding()
    world = serving(first, 768)
    assert dimensions(world) == {first.revision: 768}
    world.advance(60)
    world.step(first)  # a reconcile without a round keeps what was measured
    assert dimensions(world) == {first.revision: 768}


def test_a_model_of_the_same_dimension_is_switched_to() -> None:
    world = serving(embedding(), 768)
    new = embedding(engine="vllm", vllm={"model": "nomic-ai/nomic-embed-text-v1.5"})
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, vectors(768))
    assert world.service_color == GREEN
    assert world.status.phase == Phase.BAKING
    assert sorted(dimensions(world).values()) == [768, 768]


def test_a_model_of_another_dimension_is_refused_before_the_switch_with_both_dimensions() -> None:
    old = embedding()
    world = serving(old, 768)
    new = embedding("mxbai-embed-large")
    world.start_verifying(new)
    world.step(new, vectors(1024))  # at the first round: no threshold to wait for, the length will not change
    assert world.changes() == [ScaleDeployment(GREEN, 0)]
    assert world.service_color == BLUE
    assert world.status.phase == Phase.DEGRADED
    assert world.status.last_failed_revision == new.revision
    assert world.status.last_failure_reason == "EmbeddingDimensionChanged"
    message = world.status.last_failure_message or ""
    assert f"revision {new.revision} answers embeddings of dimension 1024" in message
    assert f"the serving revision {old.revision} of dimension 768" in message
    assert "rollout.allowDimensionChange: true" in message
    assert [e.reason for e in world.events()] == ["RolledBack"]
    assert dimensions(world) == {old.revision: 768}


def test_allow_dimension_change_lets_it_through() -> None:
    world = serving(embedding(), 768)
    new = embedding("mxbai-embed-large", rollout={"allowDimensionChange": True})
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, vectors(1024))
    assert world.changes() == [ApplyService(GREEN)]
    assert world.status.phase == Phase.BAKING
    assert dimensions(world)[new.revision] == 1024


def test_a_serving_revision_never_measured_is_no_reason_to_refuse() -> None:
    # A chat model becoming an embedding model has no vectors to compare with.
    world = World()
    chat = backend()
    world.step(chat)
    world.ready(BLUE)
    world.step(chat)
    for _ in range(3):
        world.step(chat, CheckOutcome(passed=True))
    new = embedding()
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, vectors(1024))
    assert world.service_color == GREEN


def test_allowing_the_change_after_the_refusal_tries_the_same_revision_again() -> None:
    old = embedding()
    world = serving(old, 768)
    refused = embedding("mxbai-embed-large")
    world.start_verifying(refused)
    world.step(refused, vectors(1024))
    assert world.status.last_failure_reason == "EmbeddingDimensionChanged"
    world.step(refused)
    assert world.changes() == []  # not retried while the spec says nothing new
    allowed = embedding("mxbai-embed-large", rollout={"allowDimensionChange": True})
    assert allowed.revision == refused.revision  # rollout settings are not in the revision
    world.step(allowed)
    assert world.status.preview_revision == allowed.revision
    assert world.status.phase == Phase.PROGRESSING
    world.ready(GREEN)
    world.step(allowed)
    for _ in range(3):
        world.step(allowed, vectors(1024))
    assert world.service_color == GREEN
    assert world.status.phase == Phase.BAKING


def test_a_revision_that_failed_otherwise_is_not_retried_by_allowing_a_dimension_change() -> None:
    world = serving(embedding(), 768)
    new = embedding("mxbai-embed-large")
    world.start_verifying(new)
    for _ in range(3):
        world.step(new, CheckOutcome(passed=False, message="/api/embed answered 500"))
    assert world.status.last_failure_reason == "CheckFailed"
    world.step(embedding("mxbai-embed-large", rollout={"allowDimensionChange": True}))
    assert world.changes() == []
    assert world.status.preview_color is None


def test_recreate_refuses_another_dimension_and_brings_the_old_model_back() -> None:
    recreate = {"strategy": "Recreate"}
    old = embedding(rollout=recreate)
    world = serving(old, 768)
    new = embedding("mxbai-embed-large", rollout=recreate)
    world.step(new)
    world.pods_gone(BLUE)
    world.step(new)
    world.ready(GREEN)
    world.step(new)
    assert world.status.phase == Phase.VERIFYING
    world.step(new, vectors(1024))
    assert world.status.last_failure_reason == "EmbeddingDimensionChanged"
    assert ScaleDeployment(BLUE, 1) in world.changes()
    assert ScaleDeployment(GREEN, 0) in world.changes()
    assert world.service_color == BLUE
