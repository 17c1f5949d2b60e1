"""Kopf handlers: when to reconcile. What to do is `turnout.reconcile`'s business.

Each InferenceBackend gets one daemon, a loop that reconciles and then sleeps until `plan` asks
to look again, or until something about the backend changes (the backend itself, its pods, its
Deployments or its Service: turnout's own watches say so), whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from turnout import metrics
from turnout.api.backend import GROUP, PLURAL, VERSION
from turnout.api.status import Phase
from turnout.health import Liveness, reconcile_budget
from turnout.kube.cached import CachedCluster
from turnout.kube.cluster import Cluster, NotLeading
from turnout.kube.informer import NotSynced
from turnout.reconcile import reconcile
from turnout.rollout.actions import RecordEvent
from turnout.rollout.plan import IDLE_RESYNC_SECONDS

RECONCILES_AT_ONCE = 16
"""How many backends are reconciled at the same time (`turnout run --reconciles-at-once`); the others wait
their turn. Unbounded, a thousand backends woken together (a start, a restart) made the event loop so
late that the checks' own timeouts ran out while the engines had answered, and healthy backends were
judged Degraded."""

ERROR_RETRY_SECONDS = 10.0
"""The first retry after a failed reconcile; each further failure in a row doubles it, up to the cap."""
ERROR_RETRY_CAP_SECONDS = 300.0


def retry_delay(failures: int, jitter: float) -> float:
    """Seconds before retrying after `failures` failed reconciles in a row (1 or more); `jitter` in
    [0, 1) spreads backends that failed together (an API outage) so they do not retry in step."""
    ceiling = min(ERROR_RETRY_CAP_SECONDS, ERROR_RETRY_SECONDS * float(2 ** min(failures - 1, 16)))
    return ceiling * (0.5 + jitter / 2)


RESYNC_SPREAD = 0.2
"""An idle backend is looked at again after the idle resync give or take this share of it."""


def resync_delay(seconds: float, jitter: float) -> float:
    """Seconds until the next look at a backend that `plan` asked to see again in `seconds`: an idle
    resync is spread by `jitter` in [0, 1), so backends started together do not resync in step."""
    if seconds < IDLE_RESYNC_SECONDS:
        return seconds
    return seconds * (1 - RESYNC_SPREAD + 2 * RESYNC_SPREAD * jitter)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.standalone = True
    settings.posting.loggers = False  # Events are turnout's own, one per transition
    settings.watching.server_timeout = 300
    settings.persistence.finalizer = "turnout.dev/daemon"
    if memo.get("cluster") is None:
        memo.cluster = CachedCluster(Cluster.connect())
    if memo.get("liveness") is None:
        memo.liveness = Liveness()
    memo.wakers = {}
    memo.turns = asyncio.Semaphore(memo.get("reconciles_at_once") or RECONCILES_AT_ONCE)


@kopf.on.startup()
async def watch_caches(memo: Any, **_: Any) -> None:
    """Start the watches the reconciles read from; their news wakes the backend's daemon, on this loop."""
    loop = asyncio.get_running_loop()

    def wake(namespace: str, name: str) -> None:
        loop.call_soon_threadsafe(_wake, memo, namespace, name)

    if isinstance(memo.cluster, CachedCluster):
        memo.cluster.start(wake)


@kopf.on.cleanup()
async def stop_caches(memo: Any, **_: Any) -> None:
    if isinstance(memo.cluster, CachedCluster):
        memo.cluster.stop()


@kopf.on.login()
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo:
    """Kopf's watches use the very credentials of turnout's own client (one kubeconfig, one identity)."""
    configuration = memo.cluster.configuration
    header = configuration.get_api_key_with_prefix("BearerToken") or configuration.get_api_key_with_prefix(
        "authorization"
    )
    scheme, _space, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme=scheme or ("Bearer" if token else None),
        token=token or None,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10)
async def run_backend(stopped: kopf.DaemonStopped, body: kopf.Body, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    """Reconcile one backend for as long as it exists."""
    namespace, name = body.metadata.namespace, body.metadata.name
    assert namespace is not None  # InferenceBackends are namespaced
    key = (namespace, name)
    wake = asyncio.Event()
    memo.wakers[key] = wake

    def emit(event: RecordEvent) -> None:
        if memo.cluster.may_write():  # a replica that lost its Lease says nothing more
            kopf.event(body, type=event.type.value, reason=event.reason, message=event.message)

    failures = 0
    last_kind: str | None = None
    try:
        while not stopped:
            wake.clear()
            try:
                # Waiting for a turn is not part of the reconcile's time budget (the liveness watchdog's).
                async with memo.turns if takes_a_turn(body) else contextlib.nullcontext():
                    with memo.liveness.reconciling(key, reconcile_budget(body.get("spec") or {})):
                        delay = resync_delay(await reconcile(memo.cluster, namespace, name, emit), random.random())
                failures, last_kind = 0, None
            except Exception as error:  # a bug or an API outage: log it, count it, retry with backoff
                failures += 1
                kind = failure_kind(error)
                metrics.record_reconcile_error(type(error).__name__)
                delay = retry_delay(failures, random.random())
                if kind != last_kind and not is_transient(error):
                    logger.exception("reconcile failed (%d in a row)", failures)
                else:  # an API outage, or the same failure again: one line, no traceback
                    logger.warning("reconcile failed (%d in a row, next try in %.0f s): %s", failures, delay, kind)
                last_kind = kind
            await _sleep(wake, stopped, delay)
    finally:
        memo.wakers.pop(key, None)


def takes_a_turn(body: Mapping[str, Any]) -> bool:
    """Whether a reconcile of `body` waits for one of the turns: all do but a benchmark's, which runs for
    minutes inside its reconcile (its own time bound) and would keep a turn from every other backend."""
    return (body.get("status") or {}).get("phase") != Phase.BENCHMARKING.value


def failure_kind(error: BaseException) -> str:
    """One line naming a failure, the same for the same failure: type, status, first line of the message."""
    status = getattr(error, "status", None)
    first = (str(error).splitlines() or [""])[0][:160]
    return f"{type(error).__name__}{f' {status}' if status else ''}: {first}".rstrip(": ")


def is_transient(error: BaseException) -> bool:
    """An API outage or a slow API server, not a bug: worth one line, not a traceback."""
    if isinstance(error, ApiException | OSError | TimeoutError | NotLeading | NotSynced):
        return True
    return type(error).__module__.startswith("urllib3")


# Async, so it runs on the event loop that the daemons' wake-up Events belong to (an asyncio.Event
# set from another thread wakes its waiter late, or not at all); turnout's watches wake through
# `loop.call_soon_threadsafe` for the same reason.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def backend_changed(name: str, namespace: str | None, type: str, memo: Any, **_: Any) -> None:
    if type == "DELETED" and namespace is not None:
        metrics.forget_backend(namespace, name)
    _wake(memo, namespace, name)


def _wake(memo: Any, namespace: str | None, name: str) -> None:
    waker = memo.get("wakers", {}).get((namespace, name))
    if waker is not None:
        waker.set()


async def _sleep(wake: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    """Sleep `seconds`, or less when the backend changes or the daemon is stopped."""
    woken = asyncio.ensure_future(wake.wait())
    halted = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({woken, halted}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        woken.cancel()
        halted.cancel()
