"""A canary's HTTPRoute on a real API server: turnout reads the route a user wrote, sets the weights of
its two refs to the color Services and nothing else, and a write from a stale copy is refused (409)
instead of undoing someone else's edit. No Gateway controller runs: the route's Gateway need not exist."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.kube.cluster import GATEWAY_GROUP, GATEWAY_VERSION, HTTP_ROUTES, Cluster
from turnout.render.route import (
    RouteChange,
    color_service_names,
    render_color_service,
    route_weights,
    route_with_weights,
)

pytestmark = pytest.mark.e2e

BLUE, GREEN = Color.BLUE, Color.GREEN
ROUTE = "chat-route"


def user_route() -> dict[str, Any]:
    """The route as a platform team writes it: the model's rule with both colors and a fallback, and an admin rule."""
    return {
        "apiVersion": f"{GATEWAY_GROUP}/{GATEWAY_VERSION}",
        "kind": "HTTPRoute",
        "metadata": {"name": ROUTE, "labels": {"team": "platform"}},
        "spec": {
            "parentRefs": [{"name": "inference-gateway"}],  # no such Gateway, and none is needed
            "hostnames": ["chat.example.com"],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"set": [{"name": "x-model", "value": "chat"}]},
                        }
                    ],
                    "backendRefs": [
                        {"name": "chat-blue", "port": 8000},
                        {"name": "chat-green", "port": 8000, "weight": 0},
                        {"name": "chat-fallback", "port": 8000, "weight": 1},
                    ],
                },
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                    "backendRefs": [{"name": "chat-admin", "port": 9000}],
                },
            ],
        },
    }


def status_of(call: Callable[[], object]) -> int:
    """The HTTP status of the ApiException `call` raises."""
    with pytest.raises(ApiException) as refused:
        call()
    status: int = refused.value.status
    return status


def weighted(route: dict[str, Any], names: dict[Color, str], blue: int, green: int) -> RouteChange:
    change = route_with_weights(route, names, {BLUE: blue, GREEN: green})
    assert isinstance(change, RouteChange), change
    return change


def test_turnout_sets_only_its_two_weights_on_a_real_route_and_a_stale_copy_is_a_conflict(
    api_client: client.ApiClient, namespace: str, crd_installed: None, gateway_api_crds: str
) -> None:
    cluster = Cluster(api_client)
    chat = Backend.parse("chat", namespace, {"engine": "vllm", "model": {"name": "org/model"}})
    names = color_service_names(chat)
    for color in Color:  # the color Services go through the same server-side apply as the stable one
        cluster.apply(render_color_service(chat, color))
    core = client.CoreV1Api(api_client)
    assert core.read_namespaced_service("chat-green", namespace).spec.selector["turnout.dev/color"] == "green"
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, namespace, HTTP_ROUTES, user_route())

    read = cluster.get_http_route(namespace, ROUTE)
    assert read is not None
    assert route_weights(read, names) == {BLUE: 1, GREEN: 0}  # the API server wrote blue's default weight
    change = weighted(read, names, 90, 10)
    assert change.changed
    stored = cluster.replace_http_route(namespace, ROUTE, change.route)

    expected = copy.deepcopy(read["spec"])
    expected["rules"][0]["backendRefs"][0]["weight"] = 90
    expected["rules"][0]["backendRefs"][1]["weight"] = 10
    assert stored["spec"] == expected  # as the API server took it: defaults and all, only two weights moved
    assert stored["metadata"]["labels"] == {"team": "platform"}
    assert stored["metadata"]["resourceVersion"] != read["metadata"]["resourceVersion"]
    assert cluster.get_http_route(namespace, ROUTE) == stored
    assert not weighted(stored, names, 90, 10).changed

    # Someone edits the route after turnout read it: turnout's write from its old copy is refused.
    assert status_of(lambda: cluster.replace_http_route(namespace, ROUTE, weighted(read, names, 50, 50).route)) == 409
    again = cluster.get_http_route(namespace, ROUTE)
    assert again is not None
    assert route_weights(again, names) == {BLUE: 90, GREEN: 10}

    # A body without the resourceVersion read would overwrite blindly: the API server refuses it too.
    blind = weighted(again, names, 50, 50).route
    del blind["metadata"]["resourceVersion"]
    assert status_of(lambda: cluster.replace_http_route(namespace, ROUTE, blind)) == 422


def test_a_route_that_is_not_there_reads_as_none_and_cannot_be_replaced(
    api_client: client.ApiClient, namespace: str, crd_installed: None, gateway_api_crds: str
) -> None:
    cluster = Cluster(api_client)
    assert cluster.get_http_route(namespace, ROUTE) is None
    body = {**user_route(), "metadata": {"name": ROUTE, "namespace": namespace, "resourceVersion": "1"}}
    assert status_of(lambda: cluster.replace_http_route(namespace, ROUTE, body)) == 404
