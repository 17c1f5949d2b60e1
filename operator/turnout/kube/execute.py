"""Carry out a `Plan`: render what an action names and write it, then the status.

No decisions here: each action is done as it says, in the order `plan` gave.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from kubernetes.client.exceptions import ApiException

from turnout.api.backend import Backend
from turnout.api.labels import BACKEND_LABEL, inspector_name
from turnout.api.status import Color, InferenceBackendStatus
from turnout.engines.model_files import model_directory
from turnout.kube.cluster import BackendRef, ClusterApi, KubeObject, in_thread
from turnout.render import render_deployment, render_model_claim, render_service
from turnout.render.deployment import deployment_name
from turnout.render.history import (
    HistoryEntry,
    entries,
    history_name,
    next_number,
    render_history_entry,
    to_delete,
)
from turnout.render.inspector import render_inspector_pod
from turnout.render.route import RouteChange, color_service_names, render_color_service, route_with_weights
from turnout.rollout.actions import (
    Action,
    ApplyClaim,
    ApplyColorServices,
    ApplyDeployment,
    ApplyService,
    CreateInspector,
    DeleteInspector,
    EventType,
    RecordEvent,
    RecordRevision,
    ScaleDeployment,
    SetRouteWeights,
    SplitService,
)
from turnout.rollout.conditions import bounded
from turnout.rollout.observed import ApplyRejection

EventSink = Callable[[RecordEvent], None]

# The API server's verdict on the object itself: asking again with the same spec changes nothing.
# (409 conflicts and 5xx are transient: they propagate and the reconcile is retried with backoff.)
REFUSALS = frozenset({400, 403, 404, 413, 422})
# The API server's message names the field and the value; more than this is noise in a log line.
MAX_REFUSAL_BYTES = 1000


@dataclass(frozen=True)
class Executed:
    """What carrying out a plan did: when the Service was switched (monotonic seconds), and the
    write the API server refused, after which nothing more of the plan was done."""

    switched_at: float | None = None
    rejected: ApplyRejection | None = None


def refusal_message(error: ApiException) -> str:
    """The API server's own message from a refusal (its Status body), bounded in length."""
    try:
        message = str(json.loads(error.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        message = f"{error.status} {error.reason}"
    return bounded(message, MAX_REFUSAL_BYTES)


def owned(obj: KubeObject, ref: BackendRef) -> KubeObject:
    """`obj` with the backend as its controlling owner, so deleting the backend collects it."""
    obj["metadata"]["ownerReferences"] = [ref.owner_reference()]
    return obj


async def execute(
    cluster: ClusterApi, ref: BackendRef, backend: Backend | None, actions: tuple[Action, ...], emit: EventSink
) -> Executed:
    """Carry out `actions` in order until the API server refuses one for good (see `REFUSALS`)."""
    switched_at: float | None = None
    for action in actions:
        if isinstance(action, RecordEvent):
            emit(action)
            continue
        if isinstance(action, DeleteInspector):
            # Also for a backend whose spec is invalid now: nothing of the inspector stays behind.
            await in_thread(partial(cluster.delete_pod, ref.namespace, action.name))
            continue
        assert backend is not None
        if isinstance(action, RecordRevision):
            await record_in_history(cluster, ref, backend, action, emit)
            continue
        try:
            if await _write(cluster, ref, backend, action):
                switched_at = time.monotonic()
        except ApiException as error:
            if error.status not in REFUSALS:
                raise
            if isinstance(action, ScaleDeployment) and error.status == 404:
                continue  # nothing to scale: the next observation shows the color missing
            return Executed(
                switched_at, ApplyRejection(_color_of(action), _object_of(backend, action), refusal_message(error))
            )
    return Executed(switched_at)


async def _write(cluster: ClusterApi, ref: BackendRef, backend: Backend, action: Action) -> bool:
    """One write; True when it was the Service's."""
    write: Callable[[], None]
    match action:
        case ApplyDeployment(color=color, replicas=replicas):
            write = partial(cluster.apply, owned(render_deployment(backend, color, replicas), ref))
        case ScaleDeployment(color=color, replicas=replicas):
            write = partial(cluster.scale_deployment, ref.namespace, deployment_name(backend, color), replicas)
        case ApplyService(color=color):
            write = partial(cluster.apply, owned(render_service(backend, color), ref))
        case SplitService():
            write = partial(cluster.apply, owned(render_service(backend, None), ref))
        case ApplyColorServices():

            def write() -> None:
                for color in Color:
                    cluster.apply(owned(render_color_service(backend, color), ref))

        case SetRouteWeights(color=color, weight=weight):
            write = partial(set_route_weights, cluster, backend, color, weight)
        case CreateInspector():
            directory = model_directory(backend.model_name, backend.model_mount_path)
            if isinstance(directory, str):
                return False
            write = partial(cluster.create_pod, owned(render_inspector_pod(backend, directory), ref))
        case ApplyClaim():
            claim = render_model_claim(backend)
            if claim is None:
                return False
            storage = backend.spec.model.storage
            if storage is not None and storage.delete_claim_on_delete:
                # Only a claim the user asked to lose with the backend is owned by it.
                claim = owned(claim, ref)
            write = partial(cluster.create_claim, claim)
        case _:
            raise AssertionError(f"not a write: {action!r}")
    await in_thread(write)
    return isinstance(action, ApplyService)


async def record_in_history(
    cluster: ClusterApi, ref: BackendRef, backend: Backend, action: RecordRevision, emit: EventSink
) -> None:
    """Keep the spec's revision in the backend's history and prune it. History is for people: when
    the API server will not keep it (e.g. RBAC of an older chart), the cutover goes on and a Warning
    Event says so."""
    try:
        await in_thread(partial(_record_in_history, cluster, ref, backend, action))
    except ApiException as error:
        if error.status not in REFUSALS:
            raise
        message = f"revision {backend.revision} not kept in history: {refusal_message(error)}"
        emit(RecordEvent(EventType.WARNING, "HistoryNotRecorded", message))


def _record_in_history(cluster: ClusterApi, ref: BackendRef, backend: Backend, action: RecordRevision) -> None:
    objects = cluster.list_controller_revisions(ref.namespace, f"{BACKEND_LABEL}={ref.name}")
    existing = entries(objects, ref.uid)
    number = next_number(existing, backend.revision)
    if number is not None:
        entry = owned(render_history_entry(backend, number, action.change_cause), ref)
        name = history_name(backend)
        if any(e.name == name for e in existing):
            # Rolled out again: made again as the newest, with this rollout's spec and cause. (Not
            # patched: the API server re-encodes `data` on any update and refuses it as changed.)
            cluster.delete_controller_revision(ref.namespace, name)
        cluster.create_controller_revision(entry)
        existing = [e for e in existing if e.name != name]
        existing.append(HistoryEntry(name, number, backend.revision, {}, action.change_cause or "", ""))
    limit = backend.spec.revision_history_limit
    for name in to_delete(existing, limit, (*action.keep, backend.revision)):
        cluster.delete_controller_revision(ref.namespace, name)


def set_route_weights(cluster: ClusterApi, backend: Backend, color: Color, weight: int) -> None:
    """Read the HTTPRoute, set turnout's two weights on it, and write it back if they changed.

    The write carries the resourceVersion read: a concurrent edit fails it with 409 (retried with the
    reconcile), never overwritten. A route gone or changed into one turnout refuses is left alone:
    the next observation reports it.
    """
    route_ref = _route_of(backend)
    route = cluster.get_http_route(backend.namespace, route_ref)
    if route is None:
        return
    change = route_with_weights(route, color_service_names(backend), {color: weight, color.other: 100 - weight})
    if isinstance(change, RouteChange) and change.changed:
        cluster.replace_http_route(backend.namespace, route_ref, change.route)


def _route_of(backend: Backend) -> str:
    name = backend.http_route
    assert name is not None, "only a routed canary sets weights"
    return name


def _color_of(action: Action) -> Color | None:
    return action.color if isinstance(action, ApplyDeployment | ScaleDeployment) else None


def _object_of(backend: Backend, action: Action) -> str:
    """The object `action` writes, as a person names it: `Deployment chat-green`."""
    match action:
        case ApplyDeployment(color=color) | ScaleDeployment(color=color):
            return f"Deployment {deployment_name(backend, color)}"
        case ApplyService() | SplitService():
            return f"Service {backend.service_name}"
        case ApplyColorServices():
            return "Services " + " and ".join(color_service_names(backend).values())
        case SetRouteWeights():
            return f"HTTPRoute {_route_of(backend)}"
        case CreateInspector():
            return f"Pod {inspector_name(backend)}"
        case _:
            return f"PersistentVolumeClaim {backend.claim_name}"


async def write_status(
    cluster: ClusterApi,
    ref: BackendRef,
    before: InferenceBackendStatus,
    after: InferenceBackendStatus,
    resource_version: str | None = None,
) -> bool:
    """Patch the status when it changed; an idle backend costs no write. Returns whether it wrote.

    With `resource_version`, the backend's as it was read for this plan: a backend changed since
    (a new spec, an annotation, another writer) makes the API server answer 409, and the caller
    reads it again and plans afresh instead of recording a status planned from the old one.
    """
    old = before.model_dump(mode="json", by_alias=True)
    new = after.model_dump(mode="json", by_alias=True)
    if old == new:
        return False
    await in_thread(lambda: cluster.patch_backend_status(ref, new, resource_version))
    return True
