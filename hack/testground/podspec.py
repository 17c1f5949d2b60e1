"""Which simulator a pod gets: engine, address, served names, key reference and behaviour, read from the pod.

The contract the renderer honours (and that these tests hold it to):

- Engine: the first container whose image is `vllm/vllm-openai` or `ollama/ollama` (any registry,
  tag or digest); annotation `sim.turnout.dev/engine: vllm|ollama` picks the engine for the first
  container instead, `none` opts the pod out.
- vLLM: `--port P` (default 8000); `--served-model-name A [B ...]`, else the `--model` value (or
  `vllm serve MODEL`) is the served name; `--host` other than all addresses (or the pod IP) makes
  the port unreachable. API key: env `VLLM_API_KEY` (a `value`, or `valueFrom.secretKeyRef` read
  from the pod's namespace by the supervisor) or `--api-key`.
- Ollama: listens where `OLLAMA_HOST` says (`0.0.0.0:11434`); without it Ollama listens on
  127.0.0.1 only, so the pod IP is refused. Env `TURNOUT_OLLAMA_MODEL` (pulled at start) and
  `TURNOUT_SERVED_NAME` (its alias) are listed in `/api/tags` from the start, tagged (`:latest`).
- Behaviour: annotation `sim.turnout.dev/behaviour` (see `behaviour`), default `healthy`.
- Degradation: annotations `sim.turnout.dev/error-ratio` (0 to 1: that share of chat completions
  answers 500), `sim.turnout.dev/latency` (seconds added to each chat completion),
  `sim.turnout.dev/ttft` (seconds to a completion's first token), `sim.turnout.dev/tokens-per-second`
  (each completion's pace; 0 is all at once) and `sim.turnout.dev/jitter` (0 to 1: each wait varies
  by that share), default 0 (see `behaviour.Degradation`). Like the behaviour, they change a running
  simulator at once.
- Embeddings: annotation `sim.turnout.dev/embedding-dimension: N` (1 to 65536) makes the model an
  embedding model whose vectors have N floats (see `engines`); without it the model is a chat
  model, which the engines' embedding endpoints refuse. A change replaces the simulator.
- Only a pod in phase Running with a pod IP is served, and not while its container's status says
  it is not running (a crash-looping container has no socket).
- File servers: a container whose command is `python3 -m http.server [--bind ADDRESS] [PORT]
  --directory DIR` (turnout's inspector pod) is no engine: `pod_files` says which claim it serves
  from, and the supervisor serves the files of that claim's volume (a hostPath PersistentVolume).
- A deleted pod (`metadata.deletionTimestamp`) stops as a kubelet stops it (`pod_shutdown`): its
  simulator serves on through the preStop sleep, then, at SIGTERM, stops listening and finishes
  the requests in flight for as long as the engine would (vLLM: `--shutdown-timeout`, default 0;
  Ollama: not at all, it closes every connection), and is killed at the grace period at the latest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from testground.behaviour import Behaviour, BehaviourError, Degradation
from testground.engines import ENGINES, Engine, EngineConfig

ENGINE_ANNOTATION = "sim.turnout.dev/engine"
BEHAVIOUR_ANNOTATION = "sim.turnout.dev/behaviour"
ERROR_RATIO_ANNOTATION = "sim.turnout.dev/error-ratio"
LATENCY_ANNOTATION = "sim.turnout.dev/latency"
TTFT_ANNOTATION = "sim.turnout.dev/ttft"
TOKENS_PER_SECOND_ANNOTATION = "sim.turnout.dev/tokens-per-second"
JITTER_ANNOTATION = "sim.turnout.dev/jitter"
EMBEDDING_DIMENSION_ANNOTATION = "sim.turnout.dev/embedding-dimension"

VLLM_PORT = 8000
OLLAMA_PORT = 11434
_IMAGES: dict[str, Engine] = {"vllm/vllm-openai": "vllm", "ollama/ollama": "ollama"}
_ALL_ADDRESSES = {"", "0.0.0.0", "::", "[::]"}
T = TypeVar("T")


class PodConfigError(ValueError):
    """An engine pod that the real engine would not serve on its pod IP; the message says why."""


@dataclass(frozen=True)
class SecretKeyRef:
    """A key of a Secret in the pod's namespace."""

    namespace: str
    name: str
    key: str


@dataclass(frozen=True)
class PodSim:
    """The simulator one pod gets. `id` is `namespace/name/uid`; `api_key` is a literal key,
    `api_key_ref` one the supervisor reads from a Secret first. `behaviour` and `degradation`
    change a running simulator (`live_update`); any other difference replaces it."""

    id: str
    host: str
    port: int
    engine: Engine
    models: tuple[str, ...]
    root: str
    behaviour: Behaviour
    api_key_ref: SecretKeyRef | None = None
    api_key: str | None = field(default=None, repr=False)
    degradation: Degradation = field(default_factory=Degradation)
    embedding_dimension: int | None = None

    def config(self, api_key: str | None = None) -> EngineConfig:
        """The engine config, with the key read from `api_key_ref` (or the literal one)."""
        return EngineConfig(self.engine, self.models, self.root, api_key or self.api_key, self.embedding_dimension)

    def live_update(self, running: PodSim) -> tuple[Behaviour | None, Degradation | None] | None:
        """What changes the `running` simulator into this one without replacing it: the behaviour
        and the degradation when they differ (None where they do not); None when it must be replaced."""
        if dataclasses.replace(running, behaviour=self.behaviour, degradation=self.degradation) != self:
            return None
        return (
            self.behaviour if self.behaviour != running.behaviour else None,
            self.degradation if self.degradation != running.degradation else None,
        )


@dataclass(frozen=True)
class PodFiles:
    """A pod running Python's file server over a directory on a claim it mounts."""

    id: str
    host: str
    port: int
    namespace: str
    claim: str
    subpath: str
    """The served directory under the claim's mount, e.g. `huggingface/hub/models--org--name` ('' for the mount)."""


@dataclass(frozen=True)
class Shutdown:
    """How a deleted pod's engine stops, in seconds from its deletion (see `Simulator.terminate`)."""

    pre_stop: float
    """The longest preStop sleep of its containers: the engine serves as before meanwhile."""
    drain: float
    """How long the engine finishes the requests in flight after SIGTERM."""
    grace: float
    """When the kubelet kills whatever is left."""


# The kubelet's grace period when the pod says none.
DEFAULT_GRACE_SECONDS = 30


def pod_shutdown(pod: dict[str, Any]) -> Shutdown:
    """How the engine of `pod`, being deleted, stops: its preStop sleep, its engine's drain, its grace period.

    The grace period is the deletion's (`metadata.deletionGracePeriodSeconds`), else the pod's.
    """
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    grace = meta.get("deletionGracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    containers = spec.get("containers") or []
    sleeps = [
        ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds") or 0 for c in containers
    ]
    drain = 0.0
    picked = _engine_container(meta.get("annotations") or {}, containers)
    if picked is not None and picked[0] == "vllm":
        options, _ = _parse_args([*(picked[1].get("command") or []), *(picked[1].get("args") or [])])
        # vLLM's default, 0, aborts the requests in flight at SIGTERM.
        drain = float((options.get("--shutdown-timeout") or ["0"])[-1])
    return Shutdown(pre_stop=float(max(sleeps, default=0)), drain=drain, grace=float(grace))


def image_engine(image: str) -> Engine | None:
    """The engine an image runs: `docker.io/vllm/vllm-openai:v0.8.5` is vllm; None for others."""
    repo = image.split("@", 1)[0]
    head, _, last = repo.rpartition("/")
    repo = f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
    return _IMAGES.get("/".join(repo.split("/")[-2:]))


HTTP_SERVER_COMMAND = ["python3", "-m", "http.server"]
HTTP_SERVER_PORT = 8000  # Python's own default


def pod_files(pod: dict[str, Any]) -> PodFiles | None:
    """The file server of a running pod whose first container runs `python3 -m http.server` over a
    directory on a mounted claim; None for any other pod. Raises PodConfigError when it would not
    answer on its pod IP or serves nothing on a claim."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    containers = spec.get("containers") or []
    if not containers or _command(containers[0])[:3] != HTTP_SERVER_COMMAND:
        return None
    ip = status.get("podIP")
    if status.get("phase") != "Running" or not ip or not _container_running(status, containers[0].get("name")):
        return None
    words = _command(containers[0])[3:]
    bind, port, directory = "", HTTP_SERVER_PORT, "."
    while words:
        word = words.pop(0)
        if word in ("--bind", "-b") and words:
            bind = words.pop(0)
        elif word in ("--directory", "-d") and words:
            directory = words.pop(0)
        elif word.isdigit():
            port = int(word)
    if bind not in _ALL_ADDRESSES and bind != ip:
        raise PodConfigError(f"python3 -m http.server binds {bind}, not the pod IP {ip}")
    claims = {v.get("name"): (v.get("persistentVolumeClaim") or {}).get("claimName") for v in spec.get("volumes") or []}
    for mount in containers[0].get("volumeMounts") or []:
        root = str(mount.get("mountPath", "")).rstrip("/")
        claim = claims.get(mount.get("name"))
        if claim and (directory == root or directory.startswith(root + "/")):
            sim_id = f"{meta.get('namespace', '')}/{meta.get('name', '')}/{meta.get('uid', '')}"
            subpath = directory[len(root) :].strip("/")
            return PodFiles(sim_id, ip, port, meta.get("namespace", ""), claim, subpath)
    raise PodConfigError(f"python3 -m http.server serves {directory}, which is on no claim the pod mounts")


def _command(container: dict[str, Any]) -> list[str]:
    return [str(word) for word in [*(container.get("command") or []), *(container.get("args") or [])]]


def pod_sim(pod: dict[str, Any]) -> PodSim | None:
    """The simulator for a pod (a dict as the API returns it), or None if it is no running engine pod.

    Raises PodConfigError when it is an engine pod the engine would not answer on (wrong host), or
    with an annotation for the simulator that cannot be read.
    """
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    ip = status.get("podIP")
    if status.get("phase") != "Running" or not ip:
        return None
    containers = spec.get("containers") or []
    if containers and _command(containers[0])[:3] == HTTP_SERVER_COMMAND:
        return None  # a file server in an engine's image (turnout's inspector): see `pod_files`
    picked = _engine_container(meta.get("annotations") or {}, spec.get("containers") or [])
    if picked is None:
        return None
    engine, container = picked
    if not _container_running(status, container.get("name")):
        return None
    annotations = meta.get("annotations") or {}
    behaviour = _annotation(annotations, BEHAVIOUR_ANNOTATION, Behaviour.parse)
    degradation = Degradation(
        _annotation(annotations, ERROR_RATIO_ANNOTATION, Degradation.parse_error_ratio),
        _annotation(annotations, LATENCY_ANNOTATION, Degradation.parse_latency),
        _annotation(annotations, TTFT_ANNOTATION, Degradation.parse_ttft),
        _annotation(annotations, TOKENS_PER_SECOND_ANNOTATION, Degradation.parse_tokens_per_second),
        _annotation(annotations, JITTER_ANNOTATION, Degradation.parse_jitter),
    )
    # The uid tells apart a pod from its namesake that replaced it (same name, maybe same IP).
    sim_id = f"{meta.get('namespace', '')}/{meta.get('name', '')}/{meta.get('uid', '')}"
    env = {str(e.get("name")): e for e in container.get("env") or [] if isinstance(e, dict)}
    if engine == "vllm":
        found = _vllm_sim(sim_id, ip, meta.get("namespace", ""), container, env, behaviour)
    else:
        found = _ollama_sim(sim_id, ip, env, behaviour)
    dimension = _annotation(annotations, EMBEDDING_DIMENSION_ANNOTATION, parse_embedding_dimension)
    return dataclasses.replace(found, degradation=degradation, embedding_dimension=dimension)


def parse_embedding_dimension(value: str | None) -> int | None:
    """Annotation `sim.turnout.dev/embedding-dimension`: a whole number 1 to 65536, or None when unset."""
    if value is None:
        return None
    if not value.strip().isdigit() or not 1 <= int(value) <= 65536:
        raise BehaviourError(f"{value!r} is not a vector length: give a whole number from 1 to 65536")
    return int(value)


def _annotation(annotations: dict[str, str], name: str, parse: Callable[[str | None], T]) -> T:
    try:
        return parse(annotations.get(name))
    except BehaviourError as error:
        raise PodConfigError(f"annotation {name}: {error}") from None


def _engine_container(
    annotations: dict[str, str], containers: list[dict[str, Any]]
) -> tuple[Engine, dict[str, Any]] | None:
    forced = annotations.get(ENGINE_ANNOTATION)
    if forced == "none" or not containers:
        return None
    for engine in ENGINES:
        if forced == engine:
            return engine, containers[0]
    for container in containers:
        found = image_engine(container.get("image") or "")
        if found is not None:
            return found, container
    return None


def _container_running(status: dict[str, Any], name: str | None) -> bool:
    for container_status in status.get("containerStatuses") or []:
        if container_status.get("name") == name:
            return bool((container_status.get("state") or {}).get("running"))
    return True  # no status reported for it: trust the pod phase


def _vllm_sim(
    sim_id: str, ip: str, namespace: str, container: dict[str, Any], env: dict[str, Any], behaviour: Behaviour
) -> PodSim:
    options, positional = _parse_args([*(container.get("command") or []), *(container.get("args") or [])])
    host = (options.get("--host") or [""])[-1]
    if host not in _ALL_ADDRESSES and host != ip:
        raise PodConfigError(f"vLLM listens on --host {host}, not on the pod IP {ip}")
    port = int((options.get("--port") or [str(VLLM_PORT)])[-1])
    model = (options.get("--model") or [""])[-1]
    if not model and "serve" in positional and positional.index("serve") + 1 < len(positional):
        model = positional[positional.index("serve") + 1]
    names = tuple(options.get("--served-model-name") or ([model] if model else []))
    key_env = env.get("VLLM_API_KEY") or {}
    ref = ((key_env.get("valueFrom") or {}).get("secretKeyRef")) or None
    key_ref = SecretKeyRef(namespace, ref["name"], ref["key"]) if ref else None
    key_flags = options.get("--api-key")
    literal = key_env.get("value") or (key_flags[-1] if key_flags else None)
    return PodSim(sim_id, ip, port, "vllm", names, model, behaviour, key_ref, literal)


def _ollama_sim(sim_id: str, ip: str, env: dict[str, Any], behaviour: Behaviour) -> PodSim:
    raw = (env.get("OLLAMA_HOST") or {}).get("value")
    if raw is None:
        raise PodConfigError("OLLAMA_HOST is unset, so Ollama listens on 127.0.0.1 only, not on the pod IP")
    address = raw.split("://", 1)[-1].rstrip("/")
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        host, port_text = address, str(OLLAMA_PORT)
    if host not in _ALL_ADDRESSES and host != ip:
        raise PodConfigError(f"OLLAMA_HOST={raw} listens on {host}, not on the pod IP {ip}")
    models = tuple(
        value
        for value in ((env.get(n) or {}).get("value") for n in ("TURNOUT_OLLAMA_MODEL", "TURNOUT_SERVED_NAME"))
        if value
    )
    return PodSim(sim_id, ip, int(port_text), "ollama", models, "", behaviour)


def _parse_args(tokens: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """`--flag value...` and `--flag=value` into {flag: values}; tokens before any flag are positional."""
    options: dict[str, list[str]] = {}
    positional: list[str] = []
    current: str | None = None
    for token in tokens:
        if token.startswith("--"):
            flag, eq, value = token.partition("=")
            options.setdefault(flag, [])
            if eq:
                options[flag].append(value)
                current = None
            else:
                options[flag] = []  # a repeated flag: the last one wins, as in argparse
                current = flag
        elif current is not None:
            options[current].append(token)
        else:
            positional.append(token)
    return options, positional
