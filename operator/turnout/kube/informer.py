"""A watch-fed cache of one kind of object: listed once, then watched, held in memory by namespace and name.

An `Informer` lists its objects (with a server-side label selector, so only turnout's are held),
then watches from the list's resourceVersion; a watch that ends is resumed from the last
resourceVersion seen, `410 Gone` means list again, and any other failure is retried with jittered
backoff and logged once per kind of failure. Every change is passed to `on_change` (from the
informer's thread).

Reads after turnout's own writes: a write's answer is remembered (`wrote`) as the newest copy of
its object until the watch delivers that resourceVersion (compared for equality only: they are
opaque), or a list started after the write completes. A write whose outcome is unknown (`forget`)
makes the next read of that object a GET.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

KubeObject = dict[str, Any]
Key = tuple[str, str]

log = logging.getLogger("turnout")

BACKOFF_SECONDS = 0.5
"""The first wait after a failed list or watch; it doubles with each failure in a row, up to the cap."""
BACKOFF_CAP_SECONDS = 30.0
SEEN_VERSIONS = 8
"""How many of an object's latest resourceVersions are remembered, so a write whose event came first is known."""
CATCH_UP_SECONDS = 5.0
"""How long a read waits for the watch to deliver turnout's own write before it GETs the object."""
SYNC_WAIT_SECONDS = 30.0
"""How long a read waits for the first list before it gives up (the reconcile is retried)."""


class NotSynced(Exception):
    """The informer has not completed its first list: nothing may be decided from it yet."""


class WatchSource(Protocol):
    """The API calls of one informer: list, watch and get of one kind, in one namespace or all (None)."""

    def list(self, namespace: str | None, selector: str | None) -> tuple[list[KubeObject], str]:
        """The objects and the list's resourceVersion."""
        ...

    def watch(self, namespace: str | None, selector: str | None, resource_version: str) -> Iterator[KubeObject]:
        """Watch events (`type`, `object`) after `resource_version`, until the API server ends the request;
        raises ApiException 410 when that resourceVersion is too old."""
        ...

    def get(self, namespace: str, name: str) -> KubeObject | None: ...

    def stop(self) -> None:
        """End a watch in progress."""
        ...


def backoff_delay(failures: int, jitter: float) -> float:
    """Seconds before listing or watching again after `failures` failures in a row (1 or more); `jitter` in
    [0, 1) spreads informers and replicas that failed together (an API server restart)."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * float(2 ** min(failures - 1, 16)))
    return ceiling * (0.5 + jitter / 2)


def parse_selector(selector: str) -> dict[str, str]:
    """An equality label selector (`a=b,c=d`) as a dict; the only form turnout reads with."""
    pairs = [term.split("=", 1) for term in selector.split(",") if term.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"not an equality label selector: {selector!r}")
    return {key.strip(): value.strip().lstrip("=") for key, value in pairs}


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name")))


def _version(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    version = (obj.get("metadata") or {}).get("resourceVersion")
    return None if version is None else str(version)


@dataclass
class _Written:
    """turnout's own write of one object, not yet seen through the watch."""

    version: str | None
    """The resourceVersion the write produced; None: unknown (the next read GETs the object)."""
    body: KubeObject | None
    """The object as the write answered it (or as a GET found it); None when the answer was not the object."""
    lists: int
    """How many lists had started when it was written: a list started later includes the write."""


class Informer:
    """The objects of one kind with turnout's labels, in one namespace or all, kept current by a watch."""

    def __init__(
        self,
        kind: str,
        source: WatchSource,
        namespace: str | None = None,
        selector: str | None = None,
        on_change: Callable[[KubeObject], None] | None = None,
        index_label: str | None = None,
        optional: bool = False,
        namespaces: Callable[[str], bool] | None = None,
        defined: Callable[[], bool] | None = None,
    ) -> None:
        self.kind = kind
        self._defined = defined
        """Of an optional kind: whether its CRD is known to exist, so that a 404 is an API server still
        starting (retried with backoff), not a kind missing (none held until `served_again`)."""
        self._holds = namespaces
        """Which namespaces' objects are held, of a watch of all of them (None: every one)."""
        self._optional = optional
        """A kind the API server may not serve (a CRD not installed): a 404 means none, until `served_again`."""
        self._served_again = threading.Event()
        self._source = source
        self._namespace = namespace
        self._selector = selector
        self._on_change = on_change
        self._objects: dict[Key, KubeObject] = {}
        self._index_label = index_label
        # (namespace, value of `index_label`) -> the keys of objects seen with it: a list by that label
        # looks at those, not at every object held (a thousand backends' Deployments in one namespace).
        # A key stays until its object is deleted, so an entry may be stale: a list checks the labels.
        self._index: dict[Key, set[Key]] = {}
        self._written: dict[Key, _Written] = {}
        self._seen: dict[Key, deque[str]] = {}
        self._lists = 0
        self._changed = threading.Condition()
        self._synced = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.resource_version: str | None = None
        """The last resourceVersion seen (list, event or bookmark); None: the next step is a list."""

    # -- the loop ------------------------------------------------------------------------------

    def start(self) -> None:
        where = self._namespace or "all namespaces"
        self._thread = threading.Thread(target=self.run, name=f"turnout-informer-{self.kind}-{where}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._served_again.set()
        self._source.stop()

    def served_again(self) -> None:
        """The kind may be served now (its CRD was created or changed): an optional informer that found it
        absent lists it again. Told by a watch of the CRD, so an absent kind costs no request meanwhile."""
        self._served_again.set()

    def run(self) -> None:
        """List, then watch and resume, until `stop`; failures are retried with backoff, never raised."""
        failures = 0
        last_failure: str | None = None
        while not self._stopping.is_set():
            try:
                if self.resource_version is None:
                    self._served_again.clear()  # a CRD created from here on is told, not missed
                    self._relist()
                self._watch()
            except Exception as error:  # an outage of the API server, or a refusal: retried in any case
                if self._stopping.is_set():
                    return  # `stop` closed the watch
                if isinstance(error, ApiException) and error.status == 410:
                    log.info("%s: watch too old (410 Gone), listing again", self._describe())
                    self.resource_version = None
                    continue
                missing = self._optional and not (self._defined is not None and self._defined())
                if missing and isinstance(error, ApiException) and error.status == 404:
                    self._absent(last_failure != "absent")
                    last_failure = "absent"
                    self._served_again.wait()
                    continue
                failures += 1
                kind = f"{type(error).__name__}{f' {error.status}' if isinstance(error, ApiException) else ''}"
                delay = backoff_delay(failures, random.random())
                if kind != last_failure:  # one line per kind of failure, not one per retry
                    log.warning(
                        "%s: list or watch failed (%s), retrying with backoff: %s", self._describe(), kind, error
                    )
                last_failure = kind
                self._stopping.wait(delay)
                continue
            if last_failure is not None:
                log.info("%s: watching again", self._describe())
            failures, last_failure = 0, None

    def _absent(self, first: bool) -> None:
        """The API server does not serve the kind (404): there are none, until a later list finds it served."""
        if first:
            log.info("%s: not served by the API server (no CRD); listed again once its CRD is", self._describe())
        with self._changed:
            gone = list(self._objects.values())
            self._objects, self._index, self._seen, self._written = {}, {}, {}, {}
            self.resource_version = None
            self._synced.set()
            self._changed.notify_all()
        self._notify(gone)

    def _describe(self) -> str:
        return f"{self.kind} in {self._namespace or 'all namespaces'}"

    def _relist(self) -> None:
        with self._changed:
            self._lists += 1
            started = self._lists
        items, version = self._source.list(self._namespace, self._selector)
        fresh = {_key(item): _slim(item) for item in items if self._held_namespace(item)}
        with self._changed:
            changed = [obj for key, obj in fresh.items() if _version(self._objects.get(key)) != _version(obj)]
            gone = [obj for key, obj in self._objects.items() if key not in fresh]
            self._objects = fresh
            self._index = {}
            for key, obj in fresh.items():
                self._indexed(key, obj)
            self._seen = {key: deque([v], maxlen=SEEN_VERSIONS) for key, obj in fresh.items() if (v := _version(obj))}
            self.resource_version = version
            for key, written in list(self._written.items()):
                if written.lists < started:
                    del self._written[key]
            self._synced.set()
            self._changed.notify_all()
        self._notify([*changed, *gone])

    def _watch(self) -> None:
        assert self.resource_version is not None
        for event in self._source.watch(self._namespace, self._selector, self.resource_version):
            if self._stopping.is_set():
                return
            kind, obj = event.get("type"), _slim(event.get("object") or {})
            if kind == "ERROR":
                raise ApiException(status=obj.get("code"), reason=f"{obj.get('reason')}: {obj.get('message')}")
            version = _version(obj)
            if kind == "BOOKMARK":
                self.resource_version = version or self.resource_version
                continue
            if not self._held_namespace(obj):
                self.resource_version = version or self.resource_version
                continue
            key = _key(obj)
            with self._changed:
                if kind == "DELETED":
                    self._objects.pop(key, None)
                    self._written.pop(key, None)
                    self._seen.pop(key, None)
                    self._index.get(self._index_key(key, obj), set()).discard(key)
                else:
                    self._objects[key] = obj
                    self._indexed(key, obj)
                    if version is not None:
                        self._seen.setdefault(key, deque(maxlen=SEEN_VERSIONS)).append(version)
                    written = self._written.get(key)
                    if written is not None and written.version == version:
                        del self._written[key]
                self.resource_version = version or self.resource_version
                self._changed.notify_all()
            self._notify([obj])

    def _held_namespace(self, obj: KubeObject) -> bool:
        return self._holds is None or self._holds(_key(obj)[0])

    def _notify(self, objects: Iterable[KubeObject]) -> None:
        if self._on_change is None:
            return
        for obj in objects:
            try:
                self._on_change(obj)
            except Exception:  # a wake-up that fails must not end the watch
                log.exception("%s: change handler failed", self._describe())

    # -- reads (blocking: call them from a worker thread) ------------------------------------------

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def holds(self, namespace: str, name: str) -> bool:
        """Whether the cache holds that object now (without waiting for the first list)."""
        with self._changed:
            return (namespace, name) in self._objects

    def wait_synced(self, timeout: float = SYNC_WAIT_SECONDS) -> None:
        """Return once the first list is in; raise NotSynced after `timeout` seconds."""
        if not self._synced.wait(timeout):
            raise NotSynced(f"the {self._describe()} are not listed yet")

    def get(self, namespace: str, name: str) -> KubeObject | None:
        """The newest copy known of one object (a copy the caller may change), or None when there is none."""
        self.wait_synced()
        return self._newest((namespace, name))

    def list(self, namespace: str, labels: Mapping[str, str]) -> list[KubeObject]:
        """The objects in `namespace` that carry all of `labels`, newest copies, sorted by name."""
        self.wait_synced()

        def matches(obj: KubeObject) -> bool:
            return all(_labels(obj).get(k) == v for k, v in labels.items())

        with self._changed:
            value = labels.get(self._index_label) if self._index_label else None
            if value is not None:
                keys = set(self._index.get((namespace, value), ()))
            else:
                keys = {key for key in self._objects if key[0] == namespace}
            # turnout's writes not yet seen through the watch: a few at a time.
            keys |= {key for key in self._written if key[0] == namespace}
            # Only the objects that match are copied; one whose write had no answer is read to know.
            wanted = [key for key in sorted(keys) if (held := self._held(key)) is None or matches(held)]
        found = [obj for key in wanted if (obj := self._newest(key)) is not None]
        return [obj for obj in found if matches(obj)]

    def _held(self, key: Key) -> KubeObject | None:
        """The newest copy held of `key` (not a copy: read it under the lock), None when unknown."""
        written = self._written.get(key)
        if written is not None:
            return written.body
        return self._objects.get(key)

    def _index_key(self, key: Key, obj: KubeObject) -> Key:
        return (key[0], str(_labels(obj).get(self._index_label, ""))) if self._index_label else ("", "")

    def _indexed(self, key: Key, obj: KubeObject) -> None:
        if self._index_label and self._index_label in _labels(obj):
            self._index.setdefault(self._index_key(key, obj), set()).add(key)

    def _newest(self, key: Key) -> KubeObject | None:
        with self._changed:
            written = self._written.get(key)
            if written is not None and written.body is None and written.version is not None:
                self._changed.wait_for(lambda: key not in self._written, timeout=CATCH_UP_SECONDS)
                written = self._written.get(key)
            if written is None:
                found = self._objects.get(key)
                return copy.deepcopy(found) if found is not None else None
            if written.body is not None:
                return copy.deepcopy(written.body)
            lists = self._lists
        # Unknown outcome, or the watch did not catch up: ask the API server, and keep its answer as the newest.
        fetched = self._source.get(*key)
        with self._changed:
            if key in self._written:
                del self._written[key]
                if fetched is not None and not self._seen_version(key, _version(fetched)):
                    self._written[key] = _Written(_version(fetched), fetched, lists)
        return copy.deepcopy(fetched)

    # -- turnout's own writes ------------------------------------------------------------------

    def wrote(self, obj: KubeObject | None, key: Key, version: str | None) -> None:
        """turnout wrote the object `key`, which is now at `version` (as `obj` when the write answered the
        object): reads return it until the watch delivers that version."""
        with self._changed:
            if self._seen_version(key, version):
                self._written.pop(key, None)  # the watch was first (or the write changed nothing)
                return
            body = copy.deepcopy(_slim(obj)) if obj is not None else None
            self._written[key] = _Written(version, body, self._lists)
            if body is not None:
                self._indexed(key, body)

    def _seen_version(self, key: Key, version: str | None) -> bool:
        return version is not None and version in self._seen.get(key, ())

    def forget(self, key: Key) -> None:
        """A write of `key` whose outcome is unknown (a timeout, a conflict): the next read GETs it."""
        with self._changed:
            self._written[key] = _Written(None, None, self._lists)


def _slim(obj: KubeObject) -> KubeObject:
    """`obj` without its managedFields, which turnout never reads and which are most of a small object."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}
