"""turnout's informer against a scripted API server: list, watch events, 410 -> list again, reconnect,
and reads after turnout's own writes (the newest copy wins until the watch has caught up)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from testground.waiting import wait_for
from turnout.kube import informer as informer_module
from turnout.kube.informer import Informer, NotSynced, backoff_delay, parse_selector

NAMESPACE = "ml"
KubeObject = dict[str, Any]


def pod(name: str, version: str, backend: str = "chat", phase: str = "Running") -> KubeObject:
    return {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "resourceVersion": version,
            "labels": {"turnout.dev/backend": backend},
        },
        "status": {"phase": phase},
    }


class End:
    """The API server ends the watch request (its timeout)."""


class ScriptedApiServer:
    """A `WatchSource` whose objects a test sets, and whose watches deliver what a test pushes."""

    def __init__(self, *objects: KubeObject, version: str = "10") -> None:
        self.objects = {o["metadata"]["name"]: o for o in objects}
        self.version = version
        self.lists: list[tuple[str | None, str | None]] = []
        self.watches: list[str] = []
        """The resourceVersion each watch started from."""
        self.gets: list[str] = []
        self.list_errors: list[Exception] = []
        self._events: queue.Queue[KubeObject | Exception | End] = queue.Queue()

    def list(self, namespace: str | None, selector: str | None) -> tuple[list[KubeObject], str]:
        self.lists.append((namespace, selector))
        if self.list_errors:
            raise self.list_errors.pop(0)
        return [dict(o) for o in self.objects.values()], self.version

    def watch(self, namespace: str | None, selector: str | None, resource_version: str) -> Iterator[KubeObject]:
        self.watches.append(resource_version)
        while True:
            item = self._events.get()
            if isinstance(item, End):
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def get(self, namespace: str, name: str) -> KubeObject | None:
        self.gets.append(name)
        return self.objects.get(name)

    def stop(self) -> None:
        self._events.put(End())

    # -- what the test does ---------------------------------------------------------------------

    def event(self, kind: str, obj: KubeObject) -> None:
        if kind == "DELETED":
            self.objects.pop(obj["metadata"]["name"], None)
        else:
            self.objects[obj["metadata"]["name"]] = obj
        self._events.put({"type": kind, "object": obj})

    def deliver_nothing_of(self, obj: KubeObject) -> None:
        """A change the watch will not deliver (the test then makes the resourceVersion expire)."""
        self.objects[obj["metadata"]["name"]] = obj

    def push(self, item: KubeObject | Exception | End) -> None:
        self._events.put(item)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer_module, "BACKOFF_SECONDS", 0.01)


class Running:
    def __init__(self, server: ScriptedApiServer) -> None:
        self.server = server
        self.changes: list[tuple[str, str]] = []
        self.informer = Informer(
            "Pod", server, NAMESPACE, "turnout.dev/backend", self._changed, index_label="turnout.dev/backend"
        )
        self.informer.start()

    def _changed(self, obj: KubeObject) -> None:
        meta = obj["metadata"]
        self.changes.append((meta["name"], meta["resourceVersion"]))

    def names(self) -> list[str]:
        return [p["metadata"]["name"] for p in self.informer.list(NAMESPACE, {"turnout.dev/backend": "chat"})]

    def version_of(self, name: str) -> str | None:
        found = self.informer.get(NAMESPACE, name)
        return None if found is None else str(found["metadata"]["resourceVersion"])


@pytest.fixture
def running() -> Iterator[Running]:
    server = ScriptedApiServer(pod("chat-blue-1", "5"), pod("other-1", "6", backend="other"))
    started = Running(server)
    yield started
    started.informer.stop()


def test_lists_with_the_label_selector_then_watches_from_the_lists_version(running: Running) -> None:
    wait_for(lambda: running.server.watches == ["10"], timeout=5, what="a watch from the list's resourceVersion")
    assert running.server.lists == [(NAMESPACE, "turnout.dev/backend")]
    assert running.informer.synced
    assert running.names() == ["chat-blue-1"]
    assert sorted(running.changes) == [("chat-blue-1", "5"), ("other-1", "6")]


def test_watch_events_add_change_and_remove_objects_and_each_is_told(running: Running) -> None:
    running.server.event("ADDED", pod("chat-green-1", "11"))
    running.server.event("MODIFIED", pod("chat-blue-1", "12", phase="Failed"))
    running.server.event("DELETED", pod("other-1", "13", backend="other"))
    wait_for(lambda: ("other-1", "13") in running.changes, timeout=5, what="the deletion told")
    assert running.names() == ["chat-blue-1", "chat-green-1"]
    assert running.version_of("chat-blue-1") == "12"
    assert running.informer.get(NAMESPACE, "other-1") is None
    assert running.changes[-3:] == [("chat-green-1", "11"), ("chat-blue-1", "12"), ("other-1", "13")]


def test_a_watch_the_server_ends_resumes_from_the_last_version_seen_without_a_list(running: Running) -> None:
    running.server.event("ADDED", pod("chat-green-1", "11"))
    running.server.push({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "14"}}})
    running.server.push(End())
    wait_for(lambda: running.server.watches == ["10", "14"], timeout=5, what="the watch resumed at 14")
    assert len(running.server.lists) == 1


def test_gone_lists_again_and_what_changed_meanwhile_is_seen(running: Running) -> None:
    wait_for(lambda: running.server.watches == ["10"], timeout=5, what="the first watch")
    running.server.deliver_nothing_of(pod("chat-green-1", "20"))
    running.server.objects.pop("chat-blue-1")
    running.server.version = "21"
    running.server.push({"type": "ERROR", "object": {"code": 410, "reason": "Expired", "message": "too old"}})
    wait_for(lambda: running.server.watches == ["10", "21"], timeout=5, what="a watch from the new list")
    assert len(running.server.lists) == 2
    assert running.names() == ["chat-green-1"]
    assert ("chat-blue-1", "5") in running.changes[2:]  # the one gone meanwhile is told too
    assert ("chat-green-1", "20") in running.changes


def test_a_broken_connection_is_retried_from_the_last_version_and_logged_once(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="turnout")
    running.server.event("ADDED", pod("chat-green-1", "11"))
    for _ in range(3):
        running.server.push(ConnectionResetError("connection reset by peer"))
    wait_for(lambda: running.server.watches == ["10", "11", "11", "11"], timeout=5, what="three reconnects")
    running.server.event("MODIFIED", pod("chat-green-1", "15"))
    wait_for(lambda: running.version_of("chat-green-1") == "15", timeout=5, what="the watch to deliver again")
    failures = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert len(running.server.lists) == 1


def test_a_failed_first_list_is_retried_and_nothing_is_read_before_it() -> None:
    server = ScriptedApiServer(pod("chat-blue-1", "5"))
    server.list_errors = [ApiException(status=503), ApiException(status=503)]
    started = Running(server)
    try:
        wait_for(lambda: started.informer.synced, timeout=5, what="the list to succeed on the third try")
        assert len(server.lists) == 3
        assert started.names() == ["chat-blue-1"]
    finally:
        started.informer.stop()


def test_reads_before_the_first_list_refuse() -> None:
    informer = Informer("Pod", ScriptedApiServer(), NAMESPACE)
    with pytest.raises(NotSynced):
        informer.wait_synced(timeout=0)


def test_a_list_by_the_indexed_label_follows_objects_that_move_between_backends(running: Running) -> None:
    running.server.event("ADDED", pod("moved-1", "11", backend="other"))
    running.server.event("MODIFIED", pod("moved-1", "12", backend="chat"))
    running.server.event("MODIFIED", pod("other-1", "13", backend="third"))
    wait_for(lambda: ("other-1", "13") in running.changes, timeout=5, what="the three events")
    assert running.names() == ["chat-blue-1", "moved-1"]
    by_backend = {b: running.informer.list(NAMESPACE, {"turnout.dev/backend": b}) for b in ("other", "third")}
    assert by_backend["other"] == []
    assert [p["metadata"]["name"] for p in by_backend["third"]] == ["other-1"]
    # A list by another label (or none) looks at every object held in the namespace.
    every = running.informer.list(NAMESPACE, {})
    assert [p["metadata"]["name"] for p in every] == ["chat-blue-1", "moved-1", "other-1"]
    running.server.event("DELETED", pod("moved-1", "14"))
    wait_for(lambda: ("moved-1", "14") in running.changes, timeout=5, what="the deletion")
    assert running.names() == ["chat-blue-1"]


def test_an_object_turnout_created_is_listed_before_the_watch_delivers_it(running: Running) -> None:
    wait_for(lambda: running.server.watches == ["10"], timeout=5, what="the first watch")
    running.informer.wrote(pod("chat-green-1", "20"), (NAMESPACE, "chat-green-1"), "20")
    assert running.names() == ["chat-blue-1", "chat-green-1"]
    assert running.server.gets == []


def test_turnouts_own_write_is_the_newest_copy_until_the_watch_delivers_it(running: Running) -> None:
    wait_for(lambda: running.server.watches == ["10"], timeout=5, what="the first watch")
    written = pod("chat-blue-1", "30", phase="Written")
    running.informer.wrote(written, (NAMESPACE, "chat-blue-1"), "30")
    # An event from before the write (another writer's change, older) must not hide the write.
    running.server.event("MODIFIED", pod("chat-blue-1", "29", phase="Older"))
    wait_for(lambda: ("chat-blue-1", "29") in running.changes, timeout=5, what="the older event")
    assert running.informer.get(NAMESPACE, "chat-blue-1")["status"]["phase"] == "Written"  # type: ignore[index]
    running.server.event("MODIFIED", pod("chat-blue-1", "30", phase="Written"))
    running.server.event("MODIFIED", pod("chat-blue-1", "31", phase="Newer"))
    wait_for(lambda: ("chat-blue-1", "31") in running.changes, timeout=5, what="the newer event")
    assert running.informer.get(NAMESPACE, "chat-blue-1")["status"]["phase"] == "Newer"  # type: ignore[index]
    assert running.server.gets == []


def test_a_write_whose_event_came_first_does_not_hide_later_changes(running: Running) -> None:
    running.server.event("MODIFIED", pod("chat-blue-1", "30", phase="Written"))
    running.server.event("MODIFIED", pod("chat-blue-1", "31", phase="Newer"))
    wait_for(lambda: ("chat-blue-1", "31") in running.changes, timeout=5, what="both events")
    running.informer.wrote(pod("chat-blue-1", "30", phase="Written"), (NAMESPACE, "chat-blue-1"), "30")
    assert running.version_of("chat-blue-1") == "31"


def test_a_write_answered_without_the_object_waits_for_the_watch(running: Running) -> None:
    wait_for(lambda: running.server.watches == ["10"], timeout=5, what="the first watch")
    running.informer.wrote(None, (NAMESPACE, "chat-blue-1"), "40")  # e.g. the scale subresource's answer
    threading.Timer(0.05, running.server.event, ("MODIFIED", pod("chat-blue-1", "40"))).start()
    assert running.version_of("chat-blue-1") == "40"
    assert running.server.gets == []


def test_a_watch_that_does_not_catch_up_in_time_is_read_by_a_get(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(informer_module, "CATCH_UP_SECONDS", 0.01)
    wait_for(lambda: running.server.watches == ["10"], timeout=5, what="the first watch")
    running.server.deliver_nothing_of(pod("chat-blue-1", "41"))
    running.informer.wrote(None, (NAMESPACE, "chat-blue-1"), "41")
    assert running.version_of("chat-blue-1") == "41"
    assert running.version_of("chat-blue-1") == "41"
    assert running.server.gets == ["chat-blue-1"]  # the GET's answer is kept until the watch has it


def test_a_write_of_unknown_outcome_makes_the_next_read_a_get(running: Running) -> None:
    wait_for(lambda: running.server.watches == ["10"], timeout=5, what="the first watch")
    running.server.deliver_nothing_of(pod("chat-blue-1", "50", phase="Conflicting"))
    running.informer.forget((NAMESPACE, "chat-blue-1"))
    assert running.informer.get(NAMESPACE, "chat-blue-1")["status"]["phase"] == "Conflicting"  # type: ignore[index]
    assert running.server.gets == ["chat-blue-1"]


def test_a_list_started_after_a_write_replaces_its_copy(running: Running) -> None:
    wait_for(lambda: running.server.watches == ["10"], timeout=5, what="the first watch")
    running.informer.wrote(pod("chat-blue-1", "60", phase="Written"), (NAMESPACE, "chat-blue-1"), "60")
    running.server.deliver_nothing_of(pod("chat-blue-1", "61", phase="Listed"))
    running.server.version = "61"
    running.server.push(ApiException(status=410, reason="Expired"))
    wait_for(lambda: len(running.server.lists) == 2, timeout=5, what="the list again")
    wait_for(lambda: running.version_of("chat-blue-1") == "61", timeout=5, what="the listed copy")


def test_backoff_doubles_up_to_the_cap_and_is_spread() -> None:
    assert backoff_delay(1, 0.0) == pytest.approx(informer_module.BACKOFF_SECONDS / 2)
    assert backoff_delay(2, 0.999) < 2 * informer_module.BACKOFF_SECONDS
    assert backoff_delay(40, 0.999) <= informer_module.BACKOFF_CAP_SECONDS
    assert backoff_delay(3, 0.0) != backoff_delay(3, 0.5)


def test_equality_selectors_parse() -> None:
    assert parse_selector("turnout.dev/backend=chat,turnout.dev/color=blue") == {
        "turnout.dev/backend": "chat",
        "turnout.dev/color": "blue",
    }
    with pytest.raises(ValueError, match="equality"):
        parse_selector("turnout.dev/backend")


def test_managed_fields_are_not_held() -> None:
    listed = pod("chat-blue-1", "5")
    listed["metadata"]["managedFields"] = [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]
    server = ScriptedApiServer(listed)
    started = Running(server)
    try:
        wait_for(lambda: started.informer.synced, timeout=5, what="the list")
        found = started.informer.get(NAMESPACE, "chat-blue-1")
        assert found is not None
        assert "managedFields" not in found["metadata"]
    finally:
        started.informer.stop()
