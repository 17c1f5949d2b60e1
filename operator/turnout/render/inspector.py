"""The inspector pod: the model claim mounted read-only, and a static file server over the model's
directory, so that turnout can read the model's config.json before the revision gets a GPU.

It runs the engine's own image (vLLM's has python3), asks for no GPU and little else, lands where
the engine's pods would (their node selector, tolerations and affinity: the claim and the image are
there), and is owned by the backend, so deleting the backend collects it.
"""

from __future__ import annotations

import copy
from typing import Any

from turnout.api.backend import Backend
from turnout.api.labels import BACKEND_LABEL, inspector_labels, inspector_name
from turnout.engines.container import kubelet_literal
from turnout.engines.model_files import ModelDirectory
from turnout.render.deployment import MODEL_VOLUME, tolerations
from turnout.render.templating import render_manifest

INSPECTOR_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
"""Python's file server serving a few small files."""
INSPECTOR_DEADLINE_SECONDS = 600
"""The pod ends itself after this long, should turnout not delete it (it does within seconds)."""


def inspector_affinity(backend: Backend) -> dict[str, Any]:
    """The template's affinity, and a preference for the nodes where the backend's pods run: a
    ReadWriteOnce claim is attached there, and can be mounted by another pod only there."""
    affinity = copy.deepcopy(backend.spec.template.affinity)
    near_engine = {
        "weight": 100,
        "podAffinityTerm": {
            "labelSelector": {"matchLabels": {BACKEND_LABEL: backend.name}},
            "topologyKey": "kubernetes.io/hostname",
        },
    }
    pod_affinity = affinity.setdefault("podAffinity", {})
    pod_affinity.setdefault("preferredDuringSchedulingIgnoredDuringExecution", []).append(near_engine)
    return affinity


def render_inspector_pod(backend: Backend, directory: ModelDirectory) -> dict[str, Any]:
    """The inspector pod of `backend`'s revision, serving `directory` on the engine's port (what a network
    policy lets turnout's checks reach); `backend` has a claim."""
    claim = backend.claim_name
    assert claim is not None, "only a model on a claim is inspected"
    template = backend.spec.template
    port = backend.engine_port
    return render_manifest(
        "inspector-pod.yaml.j2",
        name=inspector_name(backend),
        namespace=backend.namespace,
        labels=inspector_labels(backend),
        active_deadline_seconds=INSPECTOR_DEADLINE_SECONDS,
        service_account_name=template.service_account_name,
        image_pull_secrets=[{"name": secret} for secret in template.image_pull_secrets],
        node_selector=dict(template.node_selector),
        tolerations=tolerations(backend),
        affinity=inspector_affinity(backend),
        volumes=[{"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
        image=backend.image,
        command=[
            "python3",
            "-m",
            "http.server",
            "--bind",
            "0.0.0.0",
            str(port),
            "--directory",
            # The kubelet expands $(VAR) in a command: the path is the user's, taken as written.
            kubelet_literal(directory.path),
        ],
        port=port,
        resources=INSPECTOR_RESOURCES,
        volume_mounts=[{"name": MODEL_VOLUME, "mountPath": backend.model_mount_path, "readOnly": True}],
        readiness_probe={"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 3},
    )
