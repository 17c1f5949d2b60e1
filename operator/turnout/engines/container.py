"""What an engine contributes to its pod: the container's start, environment, probes and volumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The container port of every engine is named so, and the Service targets the name: switching
# the engine between vLLM and Ollama changes no Service port.
PORT_NAME = "http"

# turnout's readiness timeout is what bounds a load; the startup probe must never kill a pod
# that is still loading weights, so its budget covers the longest `readyTimeoutSeconds` allowed.
# It does not follow the field itself: rollout settings must not change the pod template.
STARTUP_BUDGET_SECONDS = 86_400

# Kubernetes objects as the API takes them (an EnvVar, a Probe, a Volume, ...).
KubeObject = dict[str, Any]


@dataclass(frozen=True)
class EngineContainer:
    """The engine-specific parts of a color's pod; the Deployment renderer adds the rest, the port included."""

    command: list[str]
    args: list[str]
    env: list[KubeObject]
    """turnout's own variables; the user's `template.env` is appended after them."""
    startup_probe: KubeObject
    readiness_probe: KubeObject
    liveness_probe: KubeObject
    volumes: list[KubeObject] = field(default_factory=list)
    """Volumes besides the model volume, which every engine mounts."""
    volume_mounts: list[KubeObject] = field(default_factory=list)


def http_probe(path: str, period_seconds: int, timeout_seconds: int, failure_threshold: int) -> KubeObject:
    """An HTTP GET probe on the engine's named port; the times are in seconds."""
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period_seconds,
        "timeoutSeconds": timeout_seconds,
        "failureThreshold": failure_threshold,
    }


def env_value(name: str, value: str) -> KubeObject:
    """A plain EnvVar."""
    return {"name": name, "value": value}
