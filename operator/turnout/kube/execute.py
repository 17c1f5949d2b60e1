"""Carry out a `Plan`: render what an action names and write it, then the status.

No decisions here: each action is done as it says, in the order `plan` gave.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from turnout.api.backend import Backend
from turnout.api.status import InferenceBackendStatus
from turnout.kube.cluster import BackendRef, ClusterApi, KubeObject, in_thread
from turnout.render import render_deployment, render_model_claim, render_service
from turnout.render.deployment import deployment_name
from turnout.rollout.actions import (
    Action,
    ApplyClaim,
    ApplyDeployment,
    ApplyService,
    RecordEvent,
    ScaleDeployment,
)

EventSink = Callable[[RecordEvent], None]


def owned(obj: KubeObject, ref: BackendRef) -> KubeObject:
    """`obj` with the backend as its controlling owner, so deleting the backend collects it."""
    obj["metadata"]["ownerReferences"] = [ref.owner_reference()]
    return obj


async def execute(
    cluster: ClusterApi, ref: BackendRef, backend: Backend | None, actions: tuple[Action, ...], emit: EventSink
) -> float | None:
    """Carry out `actions` in order; return when the Service was switched (monotonic seconds), if it was."""
    switched_at: float | None = None
    for action in actions:
        match action:
            case ApplyDeployment(color=color, replicas=replicas):
                assert backend is not None
                deployment = owned(render_deployment(backend, color, replicas), ref)
                await in_thread(partial(cluster.apply, deployment))
            case ScaleDeployment(color=color, replicas=replicas):
                assert backend is not None
                name = deployment_name(backend, color)
                await in_thread(partial(cluster.scale_deployment, ref.namespace, name, replicas))
            case ApplyService(color=color):
                assert backend is not None
                service = owned(render_service(backend, color), ref)
                await in_thread(partial(cluster.apply, service))
                switched_at = time.monotonic()
            case ApplyClaim():
                assert backend is not None
                claim = render_model_claim(backend)
                if claim is not None:
                    storage = backend.spec.model.storage
                    if storage is not None and storage.delete_claim_on_delete:
                        # Only a claim the user asked to lose with the backend is owned by it.
                        claim = owned(claim, ref)
                    await in_thread(partial(cluster.create_claim, claim))
            case RecordEvent():
                emit(action)
    return switched_at


async def write_status(
    cluster: ClusterApi, ref: BackendRef, before: InferenceBackendStatus, after: InferenceBackendStatus
) -> bool:
    """Patch the status when it changed; an idle backend costs no write. Returns whether it wrote."""
    old = before.model_dump(mode="json", by_alias=True)
    new = after.model_dump(mode="json", by_alias=True)
    if old == new:
        return False
    await in_thread(lambda: cluster.patch_backend_status(ref, new))
    return True
