"""spec -> manifests: pure functions from a validated Backend to Kubernetes objects as plain dicts.

Decisions are made in Python here; the jinja2 templates in `templates/` only lay the values out,
each through `tojson`, so no string in a spec can add or change a key.
"""

from __future__ import annotations

from typing import Any

from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.render.deployment import render_deployment
from turnout.render.service import render_service
from turnout.render.storage import render_model_claim

__all__ = ["render_backend", "render_deployment", "render_model_claim", "render_service"]


def render_backend(backend: Backend, color: Color, active: Color) -> list[dict[str, Any]]:
    """Every object of `backend` with `color` running the current revision and `active` serving.

    The dry run of `turnout render`: the model claim (if turnout creates it), the Deployment of
    `color` at `spec.replicas`, and the Service selecting `active`. The other color's Deployment is
    the operator's business (it may be scaled down or hold the previous revision).
    """
    objects: list[dict[str, Any]] = []
    claim = render_model_claim(backend)
    if claim is not None:
        objects.append(claim)
    objects.append(render_deployment(backend, color, backend.spec.replicas))
    objects.append(render_service(backend, active))
    return objects
