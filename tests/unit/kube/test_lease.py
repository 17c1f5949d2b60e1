"""Leader election on a Lease: who acts, when a standby takes over, when a holder stops acting."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.dynamic.exceptions import ConflictError

from turnout.kube.lease import LeaseElector, Move, Observed, next_move


class FakeLease:
    """One Lease in memory, with resourceVersions: a write from a stale read is a conflict."""

    name = "turnout"

    def __init__(self) -> None:
        self.body: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def get(self) -> dict[str, Any] | None:
        if self.down:
            raise OSError("connection refused")
        return copy.deepcopy(self.body)

    def create(self, body: dict[str, Any]) -> None:
        if self.body is not None:
            raise ConflictError(_Error())
        self._store(body)

    def replace(self, body: dict[str, Any]) -> None:
        assert self.body is not None
        if body["metadata"].get("resourceVersion") != self.body["metadata"]["resourceVersion"]:
            raise ConflictError(_Error())
        self._store(body)

    def _store(self, body: dict[str, Any]) -> None:
        self.version += 1
        self.body = copy.deepcopy(body)
        self.body["metadata"]["resourceVersion"] = str(self.version)

    @property
    def holder(self) -> str | None:
        return None if self.body is None else self.body["spec"].get("holderIdentity")


class _Error:
    status, reason, body, headers = 409, "Conflict", "", {}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(lease: FakeLease, identity: str, clock: Clock) -> LeaseElector:
    return LeaseElector(lease, identity, lease_seconds=15, renew_deadline_seconds=10, retry_seconds=2, clock=clock)


def test_next_move() -> None:
    held = Observed(holder="b", version="7", changed_at=100.0)
    assert next_move(None, "a", 100.0, 15) is Move.CREATE
    assert next_move(held, "b", 100.0, 15) is Move.RENEW
    assert next_move(held, "a", 114.9, 15) is Move.WAIT
    assert next_move(held, "a", 115.0, 15) is Move.TAKE
    assert next_move(Observed(holder=None, version="8", changed_at=100.0), "a", 100.0, 15) is Move.TAKE


def test_one_acquires_the_other_stands_by_while_it_renews() -> None:
    lease, clock = FakeLease(), Clock()
    a, b = elector(lease, "a", clock), elector(lease, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    for _ in range(30):  # a minute of renewals: b never gets it
        clock.now += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert (lease.holder, a.leading(), b.leading()) == ("a", True, False)


def test_a_standby_takes_over_once_the_holder_stopped_renewing_for_the_lease_duration_by_its_own_clock() -> None:
    lease, clock = FakeLease(), Clock()
    a, b = elector(lease, "a", clock), elector(lease, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b first sees the record now
    clock.now += 14
    assert not b.try_acquire_or_renew()
    clock.now += 1
    assert b.try_acquire_or_renew()
    assert lease.holder == "b"
    assert lease.body is not None
    assert lease.body["spec"]["leaseTransitions"] == 1


def test_a_holder_stops_acting_before_anyone_may_take_over() -> None:
    lease, clock = FakeLease(), Clock()
    a, b = elector(lease, "a", clock), elector(lease, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    lease.down = True  # a cannot renew: the API server is unreachable from it
    clock.now += 9.9
    assert not a.try_acquire_or_renew()
    assert a.leading()
    clock.now += 0.1
    assert not a.leading()  # 10 s without renewal: a stops acting ...
    lease.down = False
    clock.now += 4.9
    assert not b.try_acquire_or_renew()  # ... while b still must wait
    clock.now += 0.1
    assert b.try_acquire_or_renew()


def test_two_taking_over_at_once_only_one_wins() -> None:
    lease, clock = FakeLease(), Clock()
    a, b, c = (elector(lease, name, clock) for name in "abc")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert not c.try_acquire_or_renew()
    clock.now += 15
    # Both read the expired record before either writes: the second write carries a stale version.
    found = lease.get()
    original_get = lease.get
    lease.get = lambda: copy.deepcopy(found)  # type: ignore[method-assign]
    won = [b.try_acquire_or_renew(), c.try_acquire_or_renew()]
    lease.get = original_get  # type: ignore[method-assign]
    assert won == [True, False]
    assert lease.holder == "b"


def test_release_lets_a_standby_take_over_at_once() -> None:
    lease, clock = FakeLease(), Clock()
    a, b = elector(lease, "a", clock), elector(lease, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    a.release()
    assert not a.leading()
    assert b.try_acquire_or_renew()
