"""The fake cluster's HTTPRoutes answer as the API server does (tests/e2e/test_http_route.py shows the real one):
a replace needs the resourceVersion it was read with, so a concurrent edit is a 409, never lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kubernetes.client.exceptions import ApiException

from tests.unit.fakes.cluster import FakeCluster
from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.render.route import RouteChange, color_service_names, render_color_service, route_with_weights

SPEC = {
    "parentRefs": [{"name": "inference-gateway"}],
    "rules": [{"backendRefs": [{"name": "chat-blue", "port": 8000}, {"name": "chat-green", "port": 8000}]}],
}
CHAT = Backend.parse("chat", "ml", {"engine": "vllm", "model": {"name": "org/model"}})


def status_of(call: Callable[[], object]) -> int:
    """The HTTP status of the ApiException `call` raises."""
    with pytest.raises(ApiException) as refused:
        call()
    status: int = refused.value.status
    return status


def weighted(cluster: FakeCluster, blue: int, green: int) -> RouteChange:
    read = cluster.get_http_route("ml", "chat-route")
    assert read is not None
    change = route_with_weights(read, color_service_names(CHAT), {Color.BLUE: blue, Color.GREEN: green})
    assert isinstance(change, RouteChange)
    return change


def test_a_route_read_and_replaced_gets_a_new_resource_version_and_keeps_the_servers_fields() -> None:
    cluster = FakeCluster()
    created = cluster.put_http_route("ml", "chat-route", SPEC)
    change = weighted(cluster, 90, 10)
    stored = cluster.replace_http_route("ml", "chat-route", change.route)
    assert stored["spec"] == change.route["spec"]
    assert stored["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert stored["metadata"]["uid"] == created["metadata"]["uid"]
    assert stored["metadata"]["generation"] == created["metadata"]["generation"] + 1
    assert cluster.http_route("ml", "chat-route") == stored
    assert [(w.verb, w.kind, w.name) for w in cluster.writes] == [("replace", "HTTPRoute", "chat-route")]


def test_a_replace_from_a_stale_read_is_a_conflict_and_the_other_writers_change_stays() -> None:
    cluster = FakeCluster()
    cluster.put_http_route("ml", "chat-route", SPEC)
    stale = weighted(cluster, 90, 10)
    theirs = cluster.put_http_route("ml", "chat-route", {**SPEC, "hostnames": ["chat.example.com"]})
    assert status_of(lambda: cluster.replace_http_route("ml", "chat-route", stale.route)) == 409
    assert cluster.http_route("ml", "chat-route") == theirs
    # Read again, recompute, write: the other writer's hostnames and turnout's weights both stay.
    stored = cluster.replace_http_route("ml", "chat-route", weighted(cluster, 90, 10).route)
    assert stored["spec"]["hostnames"] == ["chat.example.com"]


def test_a_route_that_is_not_there_reads_as_none_and_cannot_be_replaced() -> None:
    cluster = FakeCluster()
    assert cluster.get_http_route("ml", "chat-route") is None
    body = {"metadata": {"name": "chat-route", "namespace": "ml", "resourceVersion": "1"}, "spec": SPEC}
    assert status_of(lambda: cluster.replace_http_route("ml", "chat-route", body)) == 404
    assert cluster.get_http_route("ml", "chat-route") is None


def test_a_replace_without_a_resource_version_is_refused() -> None:
    cluster = FakeCluster()
    cluster.put_http_route("ml", "chat-route", SPEC)
    body = weighted(cluster, 50, 50).route
    del body["metadata"]["resourceVersion"]
    assert status_of(lambda: cluster.replace_http_route("ml", "chat-route", body)) == 422
    assert cluster.http_route("ml", "chat-route") is not None


def test_color_services_are_applied_as_any_service() -> None:
    cluster = FakeCluster()
    for color in Color:
        cluster.apply(render_color_service(CHAT, color))
    green = cluster.service("ml", "chat-green")
    assert green is not None
    assert green["spec"]["selector"]["turnout.dev/color"] == "green"
