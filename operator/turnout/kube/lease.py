"""Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it.

One replica holds the Lease and renews it every `retry_seconds`; the others watch it and take it
over once its holder has not renewed for `lease_seconds`, as *they* measure time (the record's own
timestamps are never compared with a local clock, so clock skew between nodes does not matter).
A holder that could not renew for `renew_deadline_seconds` (shorter than `lease_seconds`) stops
acting: it knows it may have lost the Lease before anyone else may take it.

`next_move` decides, purely; `LeaseElector` does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError, DynamicApiError

log = logging.getLogger("turnout.lease")

LEASE_SECONDS = 15.0
RENEW_DEADLINE_SECONDS = 10.0
RETRY_SECONDS = 2.0


class Move(StrEnum):
    CREATE = "create"
    """No Lease yet: create it, held by me."""
    RENEW = "renew"
    """I hold it: renew it."""
    TAKE = "take"
    """Free, or its holder stopped renewing it `lease_seconds` ago by my clock: take it over."""
    WAIT = "wait"
    """Someone else holds it and renews it."""


@dataclass(frozen=True)
class Observed:
    """The Lease as last read, and when (my monotonic clock) it last changed."""

    holder: str | None
    version: str
    changed_at: float


def next_move(lease: Observed | None, me: str, now: float, lease_seconds: float) -> Move:
    """What to do with the Lease now."""
    if lease is None:
        return Move.CREATE
    if lease.holder == me:
        return Move.RENEW
    if not lease.holder or now - lease.changed_at >= lease_seconds:
        return Move.TAKE
    return Move.WAIT


class LeaseApi(Protocol):
    """Reads and writes of one Lease, as dicts (`Cluster.lease`, or a test's fake)."""

    name: str

    def get(self) -> dict[str, Any] | None: ...
    def create(self, body: dict[str, Any]) -> None: ...
    def replace(self, body: dict[str, Any]) -> None:
        """PUT with the body's resourceVersion: a Lease changed since it was read is a conflict."""


def _micro_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Acquire, hold and release one Lease for `identity`."""

    def __init__(
        self,
        api: LeaseApi,
        identity: str,
        *,
        lease_seconds: float = LEASE_SECONDS,
        renew_deadline_seconds: float = RENEW_DEADLINE_SECONDS,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        assert renew_deadline_seconds < lease_seconds, "a holder must stop before others may start"
        self.api, self.identity = api, identity
        self.lease_seconds, self.renew_deadline, self.retry = lease_seconds, renew_deadline_seconds, retry_seconds
        self.clock, self.wall = clock, wall
        self.observed: Observed | None = None
        self.renewed_at: float | None = None
        """When (my clock) I last wrote the Lease as its holder."""
        self.last_attempt: float | None = None

    def leading(self) -> bool:
        """I hold the Lease, and renewed it within the renew deadline."""
        return self.renewed_at is not None and self.clock() - self.renewed_at < self.renew_deadline

    @property
    def holder(self) -> str | None:
        return self.observed.holder if self.observed else None

    def try_acquire_or_renew(self) -> bool:
        """One round: read the Lease, then create, renew or take it if I may. True when I hold it now."""
        now = self.clock()
        self.last_attempt = now
        try:
            held = self._round(now)
        except ConflictError:
            return False  # someone wrote it since my read: the next round reads again
        except (DynamicApiError, ApiException, OSError) as error:
            log.warning("lease: %s", _short(error))
            return False
        except Exception as error:  # urllib3's timeouts and connection errors
            if not type(error).__module__.startswith("urllib3"):
                raise
            log.warning("lease: %s", _short(error))
            return False
        if held:
            if self.renewed_at is None:
                log.info("lease acquired by %s", self.identity)
            self.renewed_at = now
        return held

    def _round(self, now: float) -> bool:
        found = self.api.get()
        self._observe(found, now)
        move = next_move(self.observed, self.identity, now, self.lease_seconds)
        if move is Move.WAIT:
            return False
        if move is Move.CREATE:
            self.api.create(self._record(None))
        else:
            assert found is not None
            self.api.replace(self._record(found))
        return True

    def _observe(self, found: dict[str, Any] | None, now: float) -> None:
        if found is None:
            self.observed = None
            return
        spec = found.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        version = str((found.get("metadata") or {}).get("resourceVersion") or "")
        if self.observed is None or (self.observed.holder, self.observed.version) != (holder, version):
            self.observed = Observed(holder, version, now)

    def _record(self, found: dict[str, Any] | None) -> dict[str, Any]:
        """The Lease held by me from now, built on `found` (its resourceVersion guards the write)."""
        now = _micro_time(self.wall())
        spec = dict((found or {}).get("spec") or {})
        taking = spec.get("holderIdentity") != self.identity
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=int(self.lease_seconds),
            renewTime=now,
        )
        if taking:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if found else 0)
        metadata = dict((found or {}).get("metadata") or {})
        if found is None:
            metadata = {"name": self.api.name}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    async def acquire(self) -> None:
        """Wait until I hold the Lease."""
        waiting_for: str | None = None
        while not await asyncio.to_thread(self.try_acquire_or_renew):
            if self.holder != waiting_for:
                waiting_for = self.holder
                log.info("standing by: the lease is held by %s", waiting_for)
            await asyncio.sleep(self.retry)

    async def hold(self, lost: asyncio.Event) -> None:
        """Renew the Lease until cancelled; set `lost` (and return) once I can no longer say I hold it."""
        while True:
            await asyncio.sleep(self.retry)
            await asyncio.to_thread(self.try_acquire_or_renew)
            if not self.leading():
                log.error("lease lost: not renewed for %.0f s (held by %s now)", self.renew_deadline, self.holder)
                lost.set()
                return

    def release(self) -> None:
        """Give the Lease up at a clean shutdown, so a standby takes over at once."""
        if not self.leading():
            return
        try:
            found = self.api.get()
            if found is None or (found.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = {**found["spec"], "holderIdentity": None, "leaseDurationSeconds": 1}
            self.api.replace({**found, "spec": spec})
        except Exception as error:  # best effort: the Lease expires anyway
            log.warning("lease not released: %s", _short(error))
        self.renewed_at = None


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]
