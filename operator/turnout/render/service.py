"""The Services of a backend: the stable one clients use, whose selector names the active color (or,
during a canary without a mesh, both colors), and (through an HTTPRoute) one per color; each forwards
`spec.service.port` to the engine's named port."""

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
    return render_backend_service(backend, backend.service_name, backend.spec.service.type.value, active)


def render_backend_service(backend: Backend, name: str, service_type: str, color: Color | None) -> dict[str, Any]:
    """A Service `name` of `backend` of type `service_type` (ClusterIP, ...) in front of the `color` pods
    (all of the backend's pods when None): the backend's labels, port `spec.service.port` to the
    engine's named port."""
    return render_manifest(
        "service.yaml.j2",
        name=name,
        namespace=backend.namespace,
        labels=backend_labels(backend, "inference"),
        type=service_type,
        selector=color_selector(backend, color) if color is not None else {BACKEND_LABEL: backend.name},
        port=backend.spec.service.port,
        port_name=PORT_NAME,
        target_port=PORT_NAME,
    )
