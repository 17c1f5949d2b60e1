"""One reconcile of one backend: observe -> plan -> execute -> write status, and its metrics.

This is the whole data flow of the operator in one place; handlers only decide *when* to call it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from kubernetes.client.exceptions import ApiException

from turnout import metrics
from turnout.api.backend import Backend, InvalidSpec
from turnout.api.status import InferenceBackendStatus
from turnout.kube.benchmark import run_benchmark
from turnout.kube.cached import ReadOnce
from turnout.kube.cluster import BackendRef, ClusterApi, in_thread
from turnout.kube.execute import EventSink, execute, write_status
from turnout.kube.observe import Benchmarker, Checker, Querier, Scraper, api_key_digest, observe
from turnout.rollout.actions import Action, CutoverResult, RecordEvent
from turnout.rollout.plan import IDLE_RESYNC_SECONDS, plan

log = logging.getLogger("turnout")

CONFLICT_RETRY_SECONDS = 0.2
"""How soon a reconcile whose status write met a changed backend runs again."""

Clock = Callable[[], datetime]
"""The time a reconcile decides at, timezone-aware UTC: the wall clock, or a test's."""


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


def describe(action: Action) -> str:
    """One action as a log line fragment, e.g. `ApplyService(green)` or `Event Switched: ...`."""
    if isinstance(action, RecordEvent):
        return f"Event {action.reason}: {action.message}"
    fields = ", ".join(str(getattr(action, name)) for name in action.__dataclass_fields__)
    return f"{type(action).__name__}({fields})"


async def write_planned_status(
    cluster: ClusterApi,
    ref: BackendRef,
    body: Mapping[str, Any],
    before: InferenceBackendStatus,
    after: InferenceBackendStatus,
) -> bool:
    """Write the status planned from `body`, guarded by its resourceVersion; False when the backend
    changed since in a way that matters to the plan (spec, annotations, status, deletion).

    A change that does not matter (Kopf's finalizer, labels) only moves the resourceVersion: the
    write is made again on the new one, so the plan's Events are not sent twice by a re-plan.
    """
    version = body["metadata"].get("resourceVersion")
    for _ in range(3):
        try:
            await write_status(cluster, ref, before, after, version)
            return True
        except ApiException as error:
            if error.status != 409:
                raise
        fresh = await in_thread(partial(cluster.get_backend, ref.namespace, ref.name))
        if fresh is None or _plan_inputs(fresh) != _plan_inputs(body):
            return False
        version = fresh["metadata"].get("resourceVersion")
    return False


def _plan_inputs(body: Mapping[str, Any]) -> tuple[Any, ...]:
    meta = body.get("metadata") or {}
    return (meta.get("generation"), meta.get("annotations") or {}, meta.get("deletionTimestamp"), body.get("status"))


def parse_backend(body: Mapping[str, Any]) -> Backend | InvalidSpec:
    """The validated backend, or the InvalidSpec to report."""
    meta = body["metadata"]
    try:
        return Backend.parse(meta["name"], meta["namespace"], body.get("spec") or {})
    except InvalidSpec as error:
        return error


async def reconcile(
    cluster: ClusterApi,
    namespace: str,
    name: str,
    emit: EventSink,
    *,
    checker: Checker | None = None,
    scraper: Scraper | None = None,
    benchmarker: Benchmarker | None = None,
    querier: Querier | None = None,
    clock: Clock = utc_now,
) -> float:
    """Bring one backend one step closer to its spec; return seconds until it should be looked at again.

    `checker` runs the check rounds (default: `run_checks`, HTTP to the pods), `scraper` reads a
    canary's traffic (default: `scrape_traffic`, the pods' metrics), `benchmarker` runs the benchmark
    gate (default: `run_benchmark`), `querier` asks the team's Prometheus a canary's metrics (default:
    `query_prometheus`); `clock` tells the time.
    """
    # The cluster's cache answers with the status this loop last wrote until its watch has caught up
    # (deciding on a stale status would undo the last step, e.g. scale a rolled-back color up).
    cluster = cast(ClusterApi, ReadOnce(cluster))  # the API key's Secret is read once per reconcile
    body = await in_thread(partial(cluster.get_backend, namespace, name))
    if body is None or body["metadata"].get("deletionTimestamp"):
        return IDLE_RESYNC_SECONDS
    meta = body["metadata"]
    ref = BackendRef(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])
    desired = parse_backend(body)
    if isinstance(desired, Backend):
        desired = replace(desired, api_key_digest=await api_key_digest(cluster, desired))
    backend = desired if isinstance(desired, Backend) else None
    observed = await observe(cluster, body, backend, clock(), checker, scraper, benchmarker or run_benchmark, querier)
    decided_at = time.monotonic()
    result = plan(desired, observed)
    if result.actions:
        steps = "; ".join(map(describe, result.actions))
        log.info("%s/%s %s: %s", ref.namespace, ref.name, result.status.phase.value, steps)
    executed = await execute(cluster, ref, backend, result.actions, emit)
    if executed.rejected is not None:
        # The refusal is an observation like any other: plan again with it (rolls back or reports).
        rejected = executed.rejected
        log.warning("%s/%s: the API server refused %s: %s", ref.namespace, ref.name, rejected.what, rejected.message)
        result = plan(desired, replace(observed, rejected=rejected))
        executed = replace(await execute(cluster, ref, backend, result.actions, emit), switched_at=executed.switched_at)
    switched_at = executed.switched_at
    if not await write_planned_status(cluster, ref, body, observed.status, result.status):
        # The backend changed since it was read (a spec edit, an annotation): plan again from it at once.
        # What this plan wrote is found again by the next observation (the Service, the Deployments).
        log.info("%s/%s changed while it was being planned; reading it again", ref.namespace, ref.name)
        return CONFLICT_RETRY_SECONDS

    engine = backend.engine.value if backend else (body.get("spec") or {}).get("engine", "unknown")
    metrics.set_backend_phase(ref.namespace, ref.name, str(engine), result.status.phase.value)
    if switched_at is not None and observed.check is not None and observed.check.passed:
        metrics.record_switch_latency(switched_at - decided_at)
    if result.benchmarked is not None:
        metrics.record_benchmark(result.benchmarked)
    if result.serving_failed is not None:
        metrics.record_serving_failure(result.serving_failed)
    if result.finished is not None:
        metrics.record_cutover(result.finished.result.value, result.finished.seconds)
        if result.finished.result in (CutoverResult.ROLLED_BACK, CutoverResult.ABORTED):
            metrics.record_rollback(result.finished.reason)
    metrics.record_reconcile()
    return result.requeue_after if result.requeue_after > 0 else IDLE_RESYNC_SECONDS
