"""The e2e harness's own bookkeeping, checked without a cluster: what `ServiceMoves` counts as a move."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from tests.e2e.harness import ServiceMoves


def service(color: str, version: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "chat", "resourceVersion": version},
        "spec": {"selector": {"turnout.dev/color": color}},
    }


def event(type_: str, color: str, version: str) -> dict[str, Any]:
    return {"type": type_, "raw_object": service(color, version)}


def bookmark(version: str) -> dict[str, Any]:
    return {"type": "BOOKMARK", "raw_object": {"kind": "Service", "metadata": {"resourceVersion": version}}}


class ApiServer:
    """A Service's list and its watches, scripted: each watch is keyed by the resourceVersion it must resume from."""

    def __init__(self, listed: dict[str, Any], watches: dict[str, list[dict[str, Any]] | ApiException]) -> None:
        self.listed, self.watches = listed, watches
        self.resumed_from: list[str] = []

    def list_service(self) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": self.listed["metadata"]["resourceVersion"]}, "items": [self.listed]}

    def watch_service(self, resource_version: str) -> Iterator[dict[str, Any]]:
        self.resumed_from.append(resource_version)
        script = self.watches[resource_version]
        if isinstance(script, ApiException):
            raise script
        yield from script


def moves_of(server: ApiServer, watches: int) -> list[str | None]:
    moves = ServiceMoves(server.list_service, server.watch_service)
    for _ in range(watches):
        moves.follow()
    return moves.colors


def test_a_flip_and_a_flip_back_between_two_watches_are_two_moves() -> None:
    server = ApiServer(
        service("blue", "10"), {"10": [event("MODIFIED", "green", "11")], "11": [event("MODIFIED", "blue", "12")]}
    )
    assert moves_of(server, watches=2) == ["green", "blue"]
    assert server.resumed_from == ["10", "11"]


def test_a_flip_and_a_flip_back_in_one_watch_are_two_moves() -> None:
    server = ApiServer(
        service("blue", "10"), {"10": [event("MODIFIED", "green", "11"), event("MODIFIED", "blue", "12")]}
    )
    assert moves_of(server, watches=1) == ["green", "blue"]


def test_changes_that_keep_the_color_are_no_move_but_move_the_resume_point() -> None:
    quiet = [event("MODIFIED", "blue", "11"), bookmark("15")]
    server = ApiServer(service("blue", "10"), {"10": quiet, "15": [event("MODIFIED", "green", "16")]})
    assert moves_of(server, watches=2) == ["green"]
    assert server.resumed_from == ["10", "15"]


def test_a_watch_too_old_to_resume_relists_and_records_the_change_it_missed() -> None:
    server = ApiServer(service("blue", "10"), {"10": ApiException(status=410, reason="Gone")})
    moves = ServiceMoves(server.list_service, server.watch_service)
    server.listed = service("green", "20")
    moves.follow()
    assert moves.colors == ["green"]
    assert moves.resource_version == "20"


def test_any_other_watch_error_is_raised() -> None:
    server = ApiServer(service("blue", "10"), {"10": ApiException(status=403, reason="Forbidden")})
    moves = ServiceMoves(server.list_service, server.watch_service)
    with pytest.raises(ApiException, match="Forbidden"):
        moves.follow()


def test_a_deleted_service_is_a_move_to_no_color() -> None:
    server = ApiServer(service("blue", "10"), {"10": [event("DELETED", "blue", "11")]})
    assert moves_of(server, watches=1) == [None]
