"""Ollama: a server that pulls the model and aliases it before the pod is Ready, on CPU or GPU.

Ollama has no authentication: anyone who reaches the Service can use (and pull or delete) models.
Keep its Service internal and guard it with a NetworkPolicy or an authenticating gateway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from turnout.api.cel import Rule, cel_format
from turnout.api.spec import InferenceBackendSpec, Ollama, SecretKeyRef
from turnout.engines.container import EngineContainer, KubeObject, env_value, http_probe
from turnout.engines.profile import DrainTimes

if TYPE_CHECKING:
    from turnout.api.backend import Backend
    from turnout.api.status import Color
    from turnout.engines.probe import PodProbe

# An Ollama model reference: optional registry and namespace, a name, an optional tag.
MODEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9][A-Za-z0-9._-]*)?$"
MODEL_NAME = (
    "with engine ollama, ollama.model (or model.name) must be an Ollama model such as llama3:8b or qwen2.5:0.5b"
)
MODEL_NAME_GOT = MODEL_NAME + " (got '{}')"
_OWN_MODEL = "has(self.ollama) && has(self.ollama.model)"

_DEFAULT_HOST, _DEFAULT_NAMESPACE, _DEFAULT_TAG = "registry.ollama.ai", "library", "latest"
_MISSING = "!MISSING!"
# Ollama's parts: a letter, digit or '_' first; a namespace has no '.', only a host has ':'.
_HOST = r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}"
_NAMESPACE = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}"
_MODEL_OR_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"
SERVED_NAME_PATTERN = rf"^(({_HOST}/)?{_NAMESPACE}/)?{_MODEL_OR_TAG}(:{_MODEL_OR_TAG})?$"
"""The served names Ollama can alias, without a URL scheme (which Ollama would drop): for the CRD to mirror."""
SERVED_NAME = (
    "with engine ollama, the served name must be a name Ollama can alias, [host/][namespace/]model[:tag]: "
    "each part starts with a letter, digit or '_'; model and tag have at most 80 letters, digits, '_', '-' "
    "or '.'; a namespace at most 80 letters, digits, '_' or '-'; a host at most 350 of those, '.' or ':'"
)
SERVED_NAME_GOT = SERVED_NAME + " (got '{}')"
CRD_RULES = (
    # One rule per field, so that the error points at the field that holds the model.
    Rule(
        ("spec",),
        f"self.engine != 'ollama' || !({_OWN_MODEL}) || self.ollama.model.matches(r'{MODEL_PATTERN}')",
        MODEL_NAME,
        ".ollama.model",
        cel_format(MODEL_NAME_GOT, "self.ollama.model"),
    ),
    Rule(
        ("spec",),
        f"self.engine != 'ollama' || {_OWN_MODEL} || self.model.name.matches(r'{MODEL_PATTERN}')",
        MODEL_NAME,
        ".model.name",
        cel_format(MODEL_NAME_GOT, "self.model.name"),
    ),
    # The default served name is metadata.name, a DNS label, which Ollama can always alias.
    Rule(
        ("spec",),
        "self.engine != 'ollama' || !has(self.model.servedName) "
        f"|| self.model.servedName.matches(r'{SERVED_NAME_PATTERN}')",
        SERVED_NAME,
        ".model.servedName",
        cel_format(SERVED_NAME_GOT, "self.model.servedName"),
    ),
)

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
        env_value("OLLAMA_HOST", f"0.0.0.0:{OLLAMA.port}"),
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


@dataclass(frozen=True)
class OllamaName:
    """A model name as Ollama reads it (its `types/model` package): host, namespace, model, tag.

    Ollama fills in `registry.ollama.ai`, `library` and `latest` where a name leaves them out,
    compares names without regard to case, and lists them (`/api/tags`) without the default
    host and namespace: the spec's `library/chat` is listed as `chat:latest`.
    """

    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> OllamaName:
        """Ollama's reading of `text`; a part promised by a separator but empty is `_MISSING` (invalid)."""
        rest, tag = text, ""
        if text.rfind(":") > text.rfind("/"):  # '/' is no tag character: a ':' before it is a host's port
            rest, tag = _cut_last(text, ":")
        if "/" not in rest:
            return cls(_DEFAULT_HOST, _DEFAULT_NAMESPACE, rest, tag or _DEFAULT_TAG)
        rest, model = _cut_last(rest, "/")
        if "/" not in rest:
            return cls(_DEFAULT_HOST, rest, model, tag or _DEFAULT_TAG)
        rest, namespace = _cut_last(rest, "/")
        host = rest.partition("://")[2] if "://" in rest else rest  # Ollama drops a URL scheme
        return cls(host or _DEFAULT_HOST, namespace, model, tag or _DEFAULT_TAG)

    def is_valid(self) -> bool:
        """Every part present, of Ollama's characters and lengths: a name `ollama cp` takes."""
        return all(
            re.fullmatch(pattern, part)
            for pattern, part in (
                (_HOST, self.host),
                (_NAMESPACE, self.namespace),
                (_MODEL_OR_TAG, self.model),
                (_MODEL_OR_TAG, self.tag),
            )
        )

    def same_as(self, other: OllamaName) -> bool:
        """The same model for Ollama: every part equal, case aside."""
        return self.key() == other.key()

    def key(self) -> tuple[str, str, str, str]:
        return (self.host.casefold(), self.namespace.casefold(), self.model.casefold(), self.tag.casefold())

    def shortest(self) -> str:
        """The name as `/api/tags` lists it: without the default host and namespace, always with a tag."""
        if self.host.casefold() != _DEFAULT_HOST:
            return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"
        if self.namespace.casefold() != _DEFAULT_NAMESPACE:
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.model}:{self.tag}"


def _cut_last(text: str, separator: str) -> tuple[str, str]:
    before, _, after = text.rpartition(separator)
    return before or _MISSING, after or _MISSING


def ollama_model_name(name: str) -> str:
    """Ollama's spelling of a model name, as `/api/tags` lists it: `chat` and `library/chat` are `chat:latest`."""
    return OllamaName.parse(name).shortest()


class OllamaProfile:
    """Ollama's `EngineProfile`: `ollama serve` with the model pulled onto the model volume."""

    image = "ollama/ollama:0.12.6"
    port = 11434
    default_gpus = 0
    # Ollama's server closes every connection at SIGTERM (`http.Server.Close`, no drain), so a stream
    # lives only through the pause: a minute of it, as an answer on CPU can take that long.
    drain = DrainTimes(pre_stop=60, grace_period=70, drains_on_sigterm=False)
    metrics = None  # Ollama serves no Prometheus metrics
    owned_env = ("OLLAMA_HOST", "OLLAMA_MODELS", "OLLAMA_KEEP_ALIVE", "OLLAMA_NUM_PARALLEL", "OLLAMA_CONTEXT_LENGTH")
    crd_rules = CRD_RULES
    api_key_field = None

    def options(self, spec: InferenceBackendSpec) -> Ollama:
        """`spec.ollama`."""
        return spec.ollama

    def tensor_parallel_size(self, backend: Backend) -> None:
        """None: turnout gives Ollama no tensor parallelism to set."""
        return None

    def problems(self, backend: Backend) -> list[str]:
        """A model name Ollama can pull, and a served name it can alias."""
        found = []
        if not re.fullmatch(MODEL_PATTERN, backend.model_name):
            field = "spec.ollama.model" if backend.spec.ollama.model else "spec.model.name"
            found.append(f"{field}: {MODEL_NAME_GOT.format(backend.model_name)}")
        if not re.fullmatch(SERVED_NAME_PATTERN, backend.served_name):
            field = "spec.model.servedName" if backend.spec.model.served_name else "metadata.name (the served name)"
            found.append(f"{field}: {SERVED_NAME_GOT.format(backend.served_name)}")
        return found

    def container(self, backend: Backend, color: Color) -> EngineContainer:
        """The start script, its environment (models in a directory of `color`'s own), and probes."""
        return EngineContainer(
            command=["/bin/sh", "-c"],
            args=[START_SCRIPT],
            env=ollama_env(backend, color),
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

    def api_key_ref(self, spec: InferenceBackendSpec) -> SecretKeyRef | None:
        """None: Ollama has no authentication."""
        return None

    async def check(self, probe: PodProbe, served_name: str) -> None:
        """`GET /api/tags` lists the served name, tagged (`chat:latest`); the root URL answers before any pull."""
        wanted = OllamaName.parse(served_name)
        await probe.expect_listed(
            "/api/tags",
            wanted.shortest(),
            list_key="models",
            name_key="name",
            verb="has",
            # Listed as Ollama spells it: `library/Chat` is served as `chat:latest`.
            same=lambda listed: OllamaName.parse(listed).same_as(wanted),
        )

    async def embed(self, probe: PodProbe, served_name: str) -> int:
        """`POST /api/embed`, Ollama's own (its `/v1/embeddings` serves OpenAI's clients): `embeddings[0]`'s length."""
        request = {"model": served_name, "input": "ping"}
        return await probe.embedding_length("/api/embed", request, "embeddings", 0)


OLLAMA = OllamaProfile()
