"""The labels and annotations turnout reads and writes, shared by the renderers, the planner and the observer."""

from __future__ import annotations

from collections.abc import Mapping

from turnout.api.backend import Backend
from turnout.api.status import Color

BACKEND_LABEL = "turnout.dev/backend"
COLOR_LABEL = "turnout.dev/color"
REVISION_LABEL = "turnout.dev/revision"
# On the inspector pod only (value `model-config`): no engine pod, never checked nor counted in a color.
INSPECTS_LABEL = "turnout.dev/inspects"
INSPECTS_MODEL_CONFIG = "model-config"
CREATED_BY_ANNOTATION = "turnout.dev/created-by"
# Set by people on an InferenceBackend, each with a revision as its value.
PROMOTE_ANNOTATION = "turnout.dev/promote"
ABORT_ANNOTATION = "turnout.dev/abort"
# `<revision>@<when>`: try a failed revision again, once per distinct value (`kubectl turnout retry`).
RETRY_ANNOTATION = "turnout.dev/retry"
# Any value: hold every cutover where it is before traffic moves (`kubectl turnout pause`/`resume`).
PAUSE_ANNOTATION = "turnout.dev/pause"
# kubectl's own: why the object last changed, shown by `kubectl turnout history`.
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
MANAGER = "turnout"


def backend_labels(backend: Backend, component: str) -> dict[str, str]:
    """Labels of every object of `backend`: the app.kubernetes.io set and the backend's name."""
    return {
        "app.kubernetes.io/name": backend.engine.value,
        "app.kubernetes.io/instance": backend.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGER,
        BACKEND_LABEL: backend.name,
    }


def color_selector(backend: Backend, color: Color) -> dict[str, str]:
    """The pods of one color of `backend`: a Deployment's (immutable) selector and the Service's."""
    return {BACKEND_LABEL: backend.name, COLOR_LABEL: color.value}


def engine_labels(backend: Backend, color: Color) -> dict[str, str]:
    """Labels of a color's Deployment and its pods, including the revision they run."""
    return {
        **backend_labels(backend, "inference"),
        **color_selector(backend, color),
        REVISION_LABEL: backend.revision,
    }


def pod_labels(backend: Backend, color: Color, user_labels: Mapping[str, str]) -> dict[str, str]:
    """The user's `template.podLabels` with turnout's own on top: selectors must stay turnout's."""
    return {**user_labels, **engine_labels(backend, color)}


def inspector_labels(backend: Backend) -> dict[str, str]:
    """Labels of the pod that serves the model's files for `backend`'s revision (no color: no Service selects it)."""
    return {
        **backend_labels(backend, "model-inspector"),
        INSPECTS_LABEL: INSPECTS_MODEL_CONFIG,
        REVISION_LABEL: backend.revision,
    }


def inspector_name(backend: Backend) -> str:
    """The inspector pod's name: one per revision, so a new revision's never meets its predecessor's."""
    return f"{backend.name}-inspect-{backend.revision}"
