"""Traffic through an HTTPRoute: the color Services, and the weights of exactly turnout's two backendRefs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnout.api.backend import Backend, InvalidSpec
from turnout.api.rules import MAX_NAME_LENGTH
from turnout.api.status import Color
from turnout.render import render_service
from turnout.render.route import (
    MAX_WEIGHT,
    RouteChange,
    RouteProblem,
    color_service_name,
    color_service_names,
    render_color_service,
    route_weights,
    route_with_weights,
)

BLUE, GREEN = Color.BLUE, Color.GREEN
NAMES = {BLUE: "chat-blue", GREEN: "chat-green"}


def backend(**spec: Any) -> Backend:
    return Backend.parse("chat", "ml", {"engine": "vllm", "model": {"name": "org/model"}, **spec})


def ref(name: str, weight: int | None = None, **fields: Any) -> dict[str, Any]:
    """A backendRef to Service `name` on port 8000, as users write them (group and kind left out)."""
    found: dict[str, Any] = {"name": name, "port": 8000, **fields}
    if weight is not None:
        found["weight"] = weight
    return found


def route(*rules: dict[str, Any], namespace: str = "ml") -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "chat-route", "namespace": namespace, "resourceVersion": "41"},
        "spec": {"parentRefs": [{"name": "inference-gateway"}], "rules": list(rules)},
    }


def changed(result: RouteChange | RouteProblem) -> RouteChange:
    assert isinstance(result, RouteChange), result
    return result


def refused(result: RouteChange | RouteProblem) -> str:
    assert isinstance(result, RouteProblem), result
    return result.message


# -- the color Services --------------------------------------------------------------------------


def test_color_services_are_named_after_the_service_and_select_one_color_each() -> None:
    chat = backend(service={"name": "chat-api", "port": 80, "type": "LoadBalancer"})
    assert color_service_names(chat) == {BLUE: "chat-api-blue", GREEN: "chat-api-green"}
    for color in Color:
        service = render_color_service(chat, color)
        stable = render_service(chat, color)
        assert service["metadata"]["name"] == color_service_name(chat, color)
        assert service["spec"]["selector"] == {"turnout.dev/backend": "chat", "turnout.dev/color": color.value}
        assert service["spec"]["type"] == "ClusterIP"  # the Gateway reaches it; the stable Service stays the door
        assert service["spec"]["ports"] == stable["spec"]["ports"]
        assert service["metadata"]["labels"] == stable["metadata"]["labels"]
        assert service["metadata"]["namespace"] == "ml"


def test_color_services_pass_kubernetes_openapi_validation(kube_schema: Callable[[dict[str, Any]], None]) -> None:
    for color in Color:
        kube_schema(render_color_service(backend(), color))


def test_a_service_name_with_room_for_the_color_suffix_is_fine() -> None:
    longest = "s" * MAX_NAME_LENGTH
    assert len(color_service_name(backend(service={"name": longest}), GREEN)) == 63
    # The default, the backend's name, always has the room: a longer backend name is refused anyway.
    with pytest.raises(InvalidSpec, match=r"metadata\.name: must be at most"):
        Backend.parse("c" * (MAX_NAME_LENGTH + 1), "ml", {"engine": "vllm", "model": {"name": "m"}})


def test_a_service_name_without_room_for_the_color_suffix_is_refused_with_a_route() -> None:
    routed = {"canary": {"steps": [{"setWeight": 10}], "traffic": {"httpRoute": {"name": "chat"}}}}
    spec = {"engine": "vllm", "model": {"name": "m"}, "service": {"name": "s" * (MAX_NAME_LENGTH + 1)}}
    with pytest.raises(
        InvalidSpec, match=r"spec\.service\.name: with canary\.traffic\.httpRoute.*\(got 58 characters\)"
    ):
        Backend.parse("chat", "ml", {**spec, "rollout": routed})
    Backend.parse("chat", "ml", spec)  # without a route, the color Services are not needed


# -- reading the weights ---------------------------------------------------------------------------


def test_weights_are_read_from_turnouts_refs_with_the_gateway_api_default_of_one() -> None:
    assert route_weights(route({"backendRefs": [ref("chat-blue", 90), ref("chat-green", 10)]}), NAMES) == {
        BLUE: 90,
        GREEN: 10,
    }
    assert route_weights(route({"backendRefs": [ref("chat-blue"), ref("chat-green")]}), NAMES) == {BLUE: 1, GREEN: 1}


def test_weights_come_from_the_first_rule_with_turnouts_refs_and_a_missing_color_has_none() -> None:
    first = {"backendRefs": [ref("other", 5)]}
    second = {"backendRefs": [ref("chat-blue", 3), ref("other", 7)]}
    third = {"backendRefs": [ref("chat-blue", 1), ref("chat-green", 99)]}
    assert route_weights(route(first, second, third), NAMES) == {BLUE: 3, GREEN: 0}


def test_a_route_without_turnouts_refs_has_no_weights() -> None:
    assert route_weights(route(), NAMES) is None
    assert route_weights({"metadata": {"name": "bare", "namespace": "ml"}}, NAMES) is None
    lookalikes = [
        ref("chat-blue", kind="ServiceImport", group="multicluster.x-k8s.io"),
        ref("chat-green", namespace="elsewhere"),
        ref("chat-blue", group="example.com"),
        ref("chat"),
    ]
    assert route_weights(route({"backendRefs": lookalikes}), NAMES) is None


# -- setting the weights -----------------------------------------------------------------------------


def test_only_the_two_weights_change_and_the_rest_of_the_route_stays_as_written() -> None:
    canary_rule = {
        "name": "model",
        "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
        "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"add": [{"name": "x", "value": "y"}]}}],
        "backendRefs": [ref("chat-blue", 100), ref("chat-green", 0), ref("fallback", 5)],
    }
    other_rule = {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}], "backendRefs": [ref("admin")]}
    before = route(canary_rule, other_rule)
    original = copy.deepcopy(before)
    result = changed(route_with_weights(before, NAMES, {BLUE: 80, GREEN: 20}))
    assert result.changed
    assert before == original  # the input is not touched
    expected = copy.deepcopy(original)
    expected["spec"]["rules"][0]["backendRefs"][0]["weight"] = 80
    expected["spec"]["rules"][0]["backendRefs"][1]["weight"] = 20
    assert result.route == expected
    assert result.rules == expected["spec"]["rules"]
    assert route_weights(result.route, NAMES) == {BLUE: 80, GREEN: 20}


def test_weights_already_in_place_change_nothing_and_an_unset_weight_of_one_stays_unset() -> None:
    before = route({"backendRefs": [ref("chat-blue"), ref("chat-green", 0)]})
    result = changed(route_with_weights(before, NAMES, {BLUE: 1, GREEN: 0}))
    assert not result.changed
    assert result.route == before
    assert "weight" not in result.rules[0]["backendRefs"][0]


def test_every_rule_with_both_colors_gets_the_weights() -> None:
    rule = {"backendRefs": [ref("chat-green", 7), ref("chat-blue", 3)]}
    result = changed(route_with_weights(route(rule, {"backendRefs": [ref("x")]}, rule), NAMES, {BLUE: 0, GREEN: 100}))
    assert [[r.get("weight") for r in rule["backendRefs"]] for rule in result.rules] == [[100, 0], [None], [100, 0]]


def test_refs_spelt_out_in_full_are_turnouts_too() -> None:
    full = [
        ref("chat-blue", 9, group="", kind="Service", namespace="ml"),
        ref("chat-green", 1, group="", kind="Service", namespace="ml"),
    ]
    result = changed(route_with_weights(route({"backendRefs": full}), NAMES, {BLUE: 5, GREEN: 5}))
    assert [r["weight"] for r in result.rules[0]["backendRefs"]] == [5, 5]


def test_a_route_without_refs_to_the_color_services_is_refused_saying_what_to_add() -> None:
    message = refused(route_with_weights(route({"backendRefs": [ref("chat")]}), NAMES, {BLUE: 1, GREEN: 0}))
    assert message == (
        "HTTPRoute chat-route has no backendRef to Service chat-blue or chat-green: "
        "add both to the rule that should carry the model's traffic"
    )
    # Another namespace's Services of the same names are not turnout's.
    elsewhere = [ref("chat-blue", namespace="other"), ref("chat-green", namespace="other")]
    assert "has no backendRef" in refused(
        route_with_weights(route({"backendRefs": elsewhere}), NAMES, {BLUE: 1, GREEN: 0})
    )


def test_a_rule_with_one_color_only_is_refused_naming_the_missing_one() -> None:
    both = {"backendRefs": [ref("chat-blue"), ref("chat-green")]}
    half = {"name": "fast", "backendRefs": [ref("chat-green"), ref("other")]}
    message = refused(route_with_weights(route(both, half), NAMES, {BLUE: 1, GREEN: 0}))
    assert message == (
        "HTTPRoute chat-route rule fast (spec.rules[1]) has a backendRef to Service chat-green but none to "
        "chat-blue: a canary needs both in the same rule; add a backendRef to chat-blue beside the one to chat-green"
    )


def test_a_rule_with_a_color_twice_is_refused() -> None:
    twice = {"backendRefs": [ref("chat-blue"), ref("chat-green"), ref("chat-blue", port=9000)]}
    message = refused(route_with_weights(route(twice), NAMES, {BLUE: 1, GREEN: 0}))
    assert message == (
        "HTTPRoute chat-route spec.rules[0] has more than one backendRef to Service chat-blue: "
        "keep one each, turnout sets its weight"
    )


@pytest.mark.parametrize("weights", [{BLUE: -1, GREEN: 1}, {BLUE: MAX_WEIGHT + 1, GREEN: 0}, {BLUE: 1}])
def test_weights_outside_the_gateway_api_range_are_a_bug(weights: dict[Color, int]) -> None:
    with pytest.raises(ValueError, match="weight must be an integer"):
        route_with_weights(route({"backendRefs": [ref("chat-blue"), ref("chat-green")]}), NAMES, weights)


# -- properties over random routes ------------------------------------------------------------------

# Refs that name turnout's Services but are someone else's (another kind, group or namespace), and others.
FOREIGN_REFS = st.one_of(
    st.builds(ref, st.sampled_from(["chat", "fallback", "chat-blue-v2"]), st.none() | st.integers(0, 100)),
    st.builds(lambda name: ref(name, namespace="other"), st.sampled_from(sorted(NAMES.values()))),
    st.builds(lambda name: ref(name, group="example.com", kind="Pool"), st.sampled_from(sorted(NAMES.values()))),
)
OWNED_REF = st.builds(
    lambda name, weight, spelt_out: ref(name, weight, **({"group": "", "kind": "Service"} if spelt_out else {})),
    st.sampled_from(sorted(NAMES.values())),
    st.none() | st.integers(0, MAX_WEIGHT),
    st.booleans(),
)
RULE_EXTRAS = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["model", "fast"]),
        "matches": st.just([{"path": {"type": "PathPrefix", "value": "/v1"}}]),
        "filters": st.just([{"type": "URLRewrite", "urlRewrite": {"hostname": "x"}}]),
        "timeouts": st.just({"request": "30s"}),
    },
)


@st.composite
def rules(draw: st.DrawFn) -> dict[str, Any]:
    refs = draw(st.lists(st.one_of(FOREIGN_REFS, OWNED_REF), max_size=5))
    rule = draw(RULE_EXTRAS)
    if refs or draw(st.booleans()):
        rule["backendRefs"] = draw(st.permutations(refs))
    return rule


routes = st.lists(rules(), max_size=4).map(lambda drawn: route(*drawn))
weights = st.fixed_dictionaries({BLUE: st.integers(0, MAX_WEIGHT), GREEN: st.integers(0, MAX_WEIGHT)})


def without_owned_weights(route_body: dict[str, Any]) -> dict[str, Any]:
    """The route with the weight of every ref to turnout's Services (by name, in the route's namespace) taken out."""
    stripped = copy.deepcopy(route_body)
    for rule in stripped["spec"]["rules"]:
        for found in rule.get("backendRefs", []):
            if found["name"] in NAMES.values() and not found.get("group") and found.get("namespace", "ml") == "ml":
                found.pop("weight", None)
    return stripped


@given(routes, weights)
def test_only_turnouts_weights_ever_differ(before: dict[str, Any], wanted: dict[Color, int]) -> None:
    original = copy.deepcopy(before)
    result = route_with_weights(before, NAMES, wanted)
    assert before == original
    if isinstance(result, RouteProblem):
        return
    assert without_owned_weights(result.route) == without_owned_weights(before)
    assert result.changed == (result.route != before)
    assert route_weights(result.route, NAMES) == wanted


@given(routes, weights)
def test_setting_the_same_weights_twice_changes_nothing_the_second_time(
    before: dict[str, Any], wanted: dict[Color, int]
) -> None:
    first = route_with_weights(before, NAMES, wanted)
    if isinstance(first, RouteProblem):
        assert route_with_weights(before, NAMES, wanted) == first
        return
    second = changed(route_with_weights(first.route, NAMES, wanted))
    assert not second.changed
    assert second.route == first.route


@given(routes, weights)
def test_a_route_is_refused_exactly_when_no_rule_holds_both_colors_once_or_a_rule_holds_one_alone(
    before: dict[str, Any], wanted: dict[Color, int]
) -> None:
    counts = []
    for rule in before["spec"]["rules"]:
        owned = [
            r["name"]
            for r in rule.get("backendRefs", [])
            if r["name"] in NAMES.values() and not r.get("group") and "namespace" not in r
        ]
        if owned:
            counts.append(sorted(owned))
    acceptable = bool(counts) and all(names == sorted(NAMES.values()) for names in counts)
    assert isinstance(route_with_weights(before, NAMES, wanted), RouteChange) is acceptable
