"""What an engine contributes to its pod: the container's start, environment, probes and volumes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# The container port of every engine is named so, and the Service targets the name: switching
# the engine between vLLM and Ollama changes no Service port.
PORT_NAME = "http"

# turnout's readiness timeout is what bounds a load; the startup probe must never kill a pod
# that is still loading weights, so its budget covers the longest `readyTimeoutSeconds` allowed.
# It does not follow the field itself: rollout settings must not change the pod template.
STARTUP_BUDGET_SECONDS = 86_400

# The kubelet expands `$(VAR)` in a container's command, args and env values, and reads `$$` as `$`:
# a `$` that starts either is doubled, so a string reaches the engine as written.
_KUBELET_SYNTAX = re.compile(r"\$(?=[$(])")

# Kubernetes objects as the API takes them (an EnvVar, a Probe, a Volume, ...).
KubeObject = dict[str, Any]


@dataclass(frozen=True)
class EngineContainer:
    """The engine-specific parts of a color's pod; the Deployment renderer adds the rest, the port included."""

    command: list[str]
    args: list[str]
    """As the kubelet reads them: a user's string goes in through `kubelet_literal`."""
    env: list[KubeObject]
    """turnout's own variables, written plainly; the renderer escapes every value (see `kubelet_literal`)
    and appends the user's `template.env`."""
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


def kubelet_literal(text: str) -> str:
    """`text` as a container arg or env value that the kubelet passes on as written.

    `$(VLLM_API_KEY)` in a model name would otherwise become the key itself in argv (and in vLLM's
    start-up log). Only a `$` before `$` or `(` is doubled, so other text is left unchanged.
    """
    return _KUBELET_SYNTAX.sub("$$", text)
