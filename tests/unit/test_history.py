"""Every revision's spec kept as a ControllerRevision owned by the backend, numbered in rollout order,
bounded by `spec.revisionHistoryLimit`: through the real reconcile on the fake cluster."""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException

from tests.unit.fakes.operator import NAME, NAMESPACE, InProcessOperator
from tests.unit.rollout.world import backend, spec
from turnout.api.status import Color
from turnout.render.history import entries
from turnout.rollout.observed import CheckOutcome

MODELS = [f"meta-llama/Llama-3.2-{size}-Instruct" for size in ("1B", "3B", "11B", "90B")]


def model(name: str) -> dict[str, str]:
    return {"name": name, "servedName": "chat"}


def settle(operator: InProcessOperator, until: str = "Healthy") -> None:
    for _ in range(60):
        for color in Color:
            operator.pods_ready(color)
        operator.advance(5)
        operator.reconcile()
        if operator.status().phase == until and operator.status().preview_color is None:
            return
    raise AssertionError(f"never reached {until}: {operator.status()}")


def roll_out(operator: InProcessOperator, new: dict[str, Any], cause: str | None = None) -> None:
    if cause is not None:
        operator.cluster.annotate_backend(NAMESPACE, NAME, "kubernetes.io/change-cause", cause)
    operator.edit(new)
    settle(operator)


def history(operator: InProcessOperator) -> list[tuple[int, str, str]]:
    return [(e.number, e.revision, e.change_cause) for e in entries(operator.cluster.history(NAMESPACE, NAME))]


def test_each_revision_rolled_out_is_kept_with_its_spec_and_change_cause(operator: InProcessOperator) -> None:
    first = spec()
    operator.start_healthy(first)
    roll_out(operator, spec(model=model(MODELS[0])), cause="smaller model")
    assert history(operator) == [
        (1, backend().revision, ""),
        (2, backend(model=model(MODELS[0])).revision, "smaller model"),
    ]
    (entry, _) = operator.cluster.history(NAMESPACE, NAME)
    # The spec as the user wrote it, defaults not filled in: what `undo` writes back.
    assert entry["data"]["spec"] == first
    owner = entry["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("InferenceBackend", NAME, True)


def test_a_revision_rolled_out_again_is_renumbered_as_the_newest(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    roll_out(operator, spec(model=model(MODELS[0])))
    roll_out(operator, spec(), cause="back to the 8B")
    assert history(operator) == [
        (2, backend(model=model(MODELS[0])).revision, ""),
        (3, backend().revision, "back to the 8B"),
    ]


def test_history_is_bounded_and_never_drops_the_serving_revision(operator: InProcessOperator) -> None:
    limited = {"revisionHistoryLimit": 2}
    operator.start_healthy(spec(**limited))
    for name in MODELS[:3]:
        roll_out(operator, spec(model=model(name), **limited))
    kept = history(operator)
    assert [number for number, _, _ in kept] == [3, 4]
    assert kept[-1][1] == operator.status().active_revision


def test_a_failed_revision_is_in_history_too(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.checks.answer = CheckOutcome(passed=False, message="no")
    operator.edit(spec(model=model(MODELS[0])))
    settle(operator, until="Degraded")
    assert [revision for _, revision, _ in history(operator)] == [
        backend().revision,
        backend(model=model(MODELS[0])).revision,
    ]


def test_history_the_api_server_refuses_does_not_stop_the_cutover(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())

    def forbidden(obj: dict[str, Any]) -> None:
        raise ApiException(status=403, reason="Forbidden")

    operator.cluster.create_controller_revision = forbidden  # type: ignore[method-assign]
    roll_out(operator, spec(model=model(MODELS[0])))
    assert operator.status().active_revision == backend(model=model(MODELS[0])).revision
    warnings = [e.message for e in operator.events if e.reason == "HistoryNotRecorded"]
    assert len(warnings) == 1
    assert "not kept in history" in warnings[0]
