"""The stable Service clients use: its selector names the active color (or, during a canary without
a mesh, both colors); nothing else changes."""

from __future__ import annotations

from typing import Any

from turnout.api.backend import Backend
from turnout.api.labels import BACKEND_LABEL, backend_labels, color_selector
from turnout.api.status import Color
from turnout.engines.container import PORT_NAME
from turnout.render.templating import render_manifest


def render_service(backend: Backend, active: Color | None) -> dict[str, Any]:
    """The Service `spec.service.name`, forwarding `spec.service.port` to the `active` color's pods,
    or to the pods of both colors when `active` is None."""
    return render_manifest(
        "service.yaml.j2",
        name=backend.service_name,
        namespace=backend.namespace,
        labels=backend_labels(backend, "inference"),
        type=backend.spec.service.type.value,
        selector=color_selector(backend, active) if active is not None else {BACKEND_LABEL: backend.name},
        port=backend.spec.service.port,
        port_name=PORT_NAME,
        target_port=PORT_NAME,
    )
