"""Ollama's part of a pod: a server that pulls the model and aliases it before the pod is Ready.

Ollama has no authentication: anyone who reaches the Service can use (and pull or delete) models.
Keep its Service internal and guard it with a NetworkPolicy or an authenticating gateway.
"""

from __future__ import annotations

from turnout.api.backend import OLLAMA_PORT, Backend
from turnout.api.status import Color
from turnout.engines.container import EngineContainer, KubeObject, env_value, http_probe

# The readiness probe looks for this file, written once the model is pulled and aliased. It is on
# the container's own filesystem, so a restarted container is not Ready until it has done so again.
READY_MARKER = "/tmp/turnout-model-ready"

# A fixed script: the model names reach it only as environment variables, never as its text.
# The pull is skipped when the model is already on the volume, so a pod restarts without the
# registry; `wait` on a background job keeps SIGTERM handled while the pull runs.
START_SCRIPT = f"""\
set -eu
rm -f {READY_MARKER}
tagged() {{ case "$1" in *:*) echo "$1" ;; *) echo "$1:latest" ;; esac; }}
ollama serve &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" || true; exit 143' TERM INT
until ollama list >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || exit 1
  sleep 1
done
if ! ollama show "$TURNOUT_OLLAMA_MODEL" >/dev/null 2>&1; then
  ollama pull "$TURNOUT_OLLAMA_MODEL" &
  wait $!
fi
if [ "$(tagged "$TURNOUT_OLLAMA_MODEL")" != "$(tagged "$TURNOUT_SERVED_NAME")" ]; then
  ollama cp "$TURNOUT_OLLAMA_MODEL" "$TURNOUT_SERVED_NAME"
fi
touch {READY_MARKER}
wait "$server"
"""


def ollama_models_dir(backend: Backend, color: Color) -> str:
    """`OLLAMA_MODELS`: one directory per color on the model volume.

    The served-name alias is a manifest in this directory; shared between colors, aliasing a new
    model would silently change what the still-active color serves under that name.
    """
    return f"{backend.model_mount_path.rstrip('/')}/ollama/{color.value}"


def ollama_env(backend: Backend, color: Color) -> list[KubeObject]:
    """The server's settings, and the two names the start script (and test simulators) read."""
    options = backend.spec.ollama
    env = [
        env_value("OLLAMA_HOST", f"0.0.0.0:{OLLAMA_PORT}"),
        env_value("OLLAMA_MODELS", ollama_models_dir(backend, color)),
        env_value("OLLAMA_KEEP_ALIVE", options.keep_alive),
        env_value("OLLAMA_NUM_PARALLEL", str(options.num_parallel)),
    ]
    if options.context_length is not None:
        env.append(env_value("OLLAMA_CONTEXT_LENGTH", str(options.context_length)))
    env += [
        env_value("TURNOUT_OLLAMA_MODEL", backend.model_name),
        env_value("TURNOUT_SERVED_NAME", backend.served_name),
    ]
    return env


def ollama_container(backend: Backend, color: Color) -> EngineContainer:
    """The Ollama container: the start script, its environment, and probes."""
    return EngineContainer(
        command=["/bin/sh", "-c"],
        args=[START_SCRIPT],
        env=ollama_env(backend, color),
        port=OLLAMA_PORT,
        # The server listens within seconds; the pull, however long, only holds readiness back.
        startup_probe=http_probe("/api/version", period_seconds=5, timeout_seconds=5, failure_threshold=60),
        readiness_probe={
            "exec": {"command": ["test", "-f", READY_MARKER]},
            "periodSeconds": 5,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        liveness_probe=http_probe("/api/version", period_seconds=10, timeout_seconds=5, failure_threshold=6),
    )
