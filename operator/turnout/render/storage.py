"""The model volume's PersistentVolumeClaim, when the user asks turnout to create it."""

from __future__ import annotations

from typing import Any

from turnout.api.backend import Backend
from turnout.api.labels import CREATED_BY_ANNOTATION, MANAGER, backend_labels
from turnout.render.templating import render_manifest


def render_model_claim(backend: Backend) -> dict[str, Any] | None:
    """The claim `claim_name` when `spec.model.storage.create`, else None (the claim is the user's).

    It carries `turnout.dev/created-by: turnout`, a mark for people: nothing reads it. The operator
    creates this claim only when none of that name exists, mounts whatever claim has that name, and
    never updates or deletes a claim, marked or not. With `deleteClaimOnDelete` at creation, the
    claim is owned by the backend, so Kubernetes' garbage collector deletes it with the backend;
    otherwise it is kept.
    """
    storage = backend.spec.model.storage
    if storage is None or not storage.create or backend.claim_name is None:
        return None
    labels = backend_labels(backend, "model-storage")
    # Both engines share the claim, so it is not labelled with the engine of the moment.
    del labels["app.kubernetes.io/name"]
    return render_manifest(
        "model-claim.yaml.j2",
        name=backend.claim_name,
        namespace=backend.namespace,
        labels=labels,
        annotations={CREATED_BY_ANNOTATION: MANAGER},
        access_modes=[mode.value for mode in storage.access_modes],
        size=storage.size,
        storage_class_name=storage.storage_class_name,
    )
