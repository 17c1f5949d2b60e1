"""What turnout must know about an inference engine, as one type: `EngineProfile`.

Each engine's module in `turnout.engines` defines one profile, and the registry there maps each
`Engine` to it. The rest of turnout asks the profile instead of branching on the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from turnout.api.backend import Backend
    from turnout.api.cel import Rule
    from turnout.api.spec import EngineOptions, InferenceBackendSpec, SecretKeyRef
    from turnout.api.status import Color
    from turnout.api.traffic import TrafficCounters
    from turnout.engines.container import EngineContainer
    from turnout.engines.probe import PodProbe


@dataclass(frozen=True)
class EngineMetrics:
    """An engine's own Prometheus metrics: where a pod serves them, and how to read what it served."""

    path: str
    """Path on the engine's port, e.g. `/metrics`."""
    read: Callable[[str], TrafficCounters]
    """What the pod served since it started, from the text it serves on `path`; raises ValueError
    when the text is not what the engine serves."""


@dataclass(frozen=True)
class DrainTimes:
    """How an engine pod stops, in seconds from its deletion: serving as before until `pre_stop`
    (the `preStop` sleep), then SIGTERM, then killed at `grace_period` at the latest."""

    pre_stop: int
    grace_period: int
    drains_on_sigterm: bool
    """Whether the engine finishes the requests in flight after SIGTERM (vLLM with
    `--shutdown-timeout`) or cuts them at once (Ollama), so its drain is the pause alone."""

    @property
    def after_sigterm(self) -> int:
        """Seconds the engine may drain after SIGTERM: the rest of the grace period, so a stream is
        cut at the grace period, not before (at least 1, the grace exceeding the pause)."""
        return self.grace_period - self.pre_stop


# What an engine that cuts its streams at SIGTERM (Ollama) needs to stop: its pause ends this much
# before the grace period, when only the grace period is given.
TEARDOWN_SECONDS = 5


class EngineProfile(Protocol):
    """One inference engine: its image and port, its spec section and rules, its container, its checks, its metrics."""

    @property
    def image(self) -> str:
        """The pinned image, used unless `template.image` is set."""

    @property
    def port(self) -> int:
        """The port the engine listens on in its container, and that turnout's checks connect to."""

    @property
    def default_gpus(self) -> int:
        """GPUs per replica when `resources.gpus` is unset."""

    @property
    def drain(self) -> DrainTimes:
        """The drain a pod gets when `template.drain` is unset."""

    @property
    def metrics(self) -> EngineMetrics | None:
        """The engine's own Prometheus metrics; None when it serves none (its canary is then judged
        by turnout's checks alone)."""

    @property
    def owned_env(self) -> tuple[str, ...]:
        """Environment variables turnout sets from fields of its own; refused in `template.env`."""

    @property
    def crd_rules(self) -> tuple[Rule, ...]:
        """The engine's checks that the CRD makes at `kubectl apply`; `problems` reports the same ones."""

    @property
    def api_key_field(self) -> str | None:
        """The spec field that names the engine's API key Secret, for messages; None when it takes no key."""

    def options(self, spec: InferenceBackendSpec) -> EngineOptions:
        """The engine's section of `spec` (`spec.vllm`): its own `model`, and options that shape its pods."""

    def tensor_parallel_size(self, backend: Backend) -> int | None:
        """GPUs one copy of the model is split across; None when the engine does not split a model."""

    def problems(self, backend: Backend) -> list[str]:
        """What `backend` must change for this engine: one `spec.field: message` per problem, [] when none."""

    def container(self, backend: Backend, color: Color) -> EngineContainer:
        """The engine's part of `color`'s pod: start, environment, probes, volumes besides the model's."""

    def api_key_ref(self, spec: InferenceBackendSpec) -> SecretKeyRef | None:
        """The Secret key holding the API key clients (and turnout's checks) must send; None when unset."""

    async def check(self, probe: PodProbe, served_name: str) -> None:
        """Whether the pod behind `probe` lives and serves `served_name`; raises `CheckFailed` saying why not."""

    async def embed(self, probe: PodProbe, served_name: str) -> int:
        """One tiny embedding request to `served_name` on the engine's own embeddings endpoint: the length
        (dimension) of the vector it answers; raises `CheckFailed` when the answer is not a vector of numbers."""
