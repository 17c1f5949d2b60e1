"""A color's Deployment: the engine's container in a pod with the model volume, GPUs and overrides."""

from __future__ import annotations

from typing import Any

from turnout.api.backend import Backend
from turnout.api.labels import color_selector, engine_labels, pod_labels
from turnout.api.status import Color
from turnout.engines.container import PORT_NAME, STARTUP_BUDGET_SECONDS, KubeObject, kubelet_literal
from turnout.render.templating import render_manifest

GPU_RESOURCE = "nvidia.com/gpu"
MODEL_VOLUME = "models"
REVISION_HISTORY_LIMIT = 2
# A color gets a new template only while idle at zero replicas, so this rarely acts; if it does,
# replacing pods in place never asks the scheduler for GPUs beyond the color's own.
ROLLING_UPDATE = {"maxSurge": 0, "maxUnavailable": 1}


def deployment_name(backend: Backend, color: Color) -> str:
    """`<backend name>-<color>`."""
    return f"{backend.name}-{color.value}"


def compute_resources(backend: Backend) -> KubeObject:
    """Requests equal to limits: GPUs must be, and equal CPU and memory make the pod Guaranteed."""
    quantities: dict[str, Any] = {}
    if backend.spec.resources.cpu is not None:
        quantities["cpu"] = backend.spec.resources.cpu
    if backend.spec.resources.memory is not None:
        quantities["memory"] = backend.spec.resources.memory
    if backend.gpus:
        quantities[GPU_RESOURCE] = str(backend.gpus)
    if not quantities:
        return {}
    return {"requests": dict(quantities), "limits": dict(quantities)}


def tolerations(backend: Backend) -> list[KubeObject]:
    """The usual taint of GPU nodes is tolerated by pods that ask for GPUs; the user's follow."""
    own: list[KubeObject] = []
    if backend.gpus:
        own.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    return own + list(backend.spec.template.tolerations)


def model_volume(backend: Backend) -> KubeObject:
    """The shared claim, or an empty scratch volume (the model is fetched again on every start)."""
    claim = backend.claim_name
    if claim is None:
        return {"name": MODEL_VOLUME, "emptyDir": {}}
    return {"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": claim}}


def literal_env(env: list[KubeObject]) -> list[KubeObject]:
    """`env` with each value a `kubelet_literal`: a variable gets the value as written, never another's."""
    return [
        {**entry, "value": kubelet_literal(entry["value"])} if isinstance(entry.get("value"), str) else entry
        for entry in env
    ]


def render_deployment(backend: Backend, color: Color, replicas: int) -> dict[str, Any]:
    """The Deployment `<name>-<color>` running `backend`'s current revision with `replicas` pods."""
    template = backend.spec.template
    container = backend.profile.container(backend, color)
    return render_manifest(
        "deployment.yaml.j2",
        name=deployment_name(backend, color),
        namespace=backend.namespace,
        labels=engine_labels(backend, color),
        replicas=replicas,
        revision_history_limit=REVISION_HISTORY_LIMIT,
        # Deployment conditions must not call a long weight load failed; turnout owns the timeout.
        progress_deadline_seconds=STARTUP_BUDGET_SECONDS,
        rolling_update=ROLLING_UPDATE,
        selector=color_selector(backend, color),
        pod_labels=pod_labels(backend, color, template.pod_labels),
        pod_annotations=dict(template.pod_annotations),
        termination_grace_seconds=backend.drain.grace_period,
        pre_stop_seconds=backend.drain.pre_stop,
        service_account_name=template.service_account_name,
        priority_class_name=template.priority_class_name,
        image_pull_secrets=[{"name": secret} for secret in template.image_pull_secrets],
        node_selector=dict(template.node_selector),
        tolerations=tolerations(backend),
        affinity=template.affinity,
        volumes=[model_volume(backend), *container.volumes],
        container_name=backend.engine.value,
        image=backend.image,
        command=container.command,
        args=container.args,
        port=backend.engine_port,
        port_name=PORT_NAME,
        env=literal_env([*container.env, *template.env]),
        resources=compute_resources(backend),
        volume_mounts=[{"name": MODEL_VOLUME, "mountPath": backend.model_mount_path}, *container.volume_mounts],
        startup_probe=container.startup_probe,
        readiness_probe=container.readiness_probe,
        liveness_probe=container.liveness_probe,
    )
