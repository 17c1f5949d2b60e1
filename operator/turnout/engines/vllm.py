"""vLLM's part of a pod: `vllm serve` with turnout's arguments, the hub cache, the API key, probes.

The arguments are the contract with vLLM's own parser (tests/engine/test_vllm_args.py parses them
with the `vllm serve` parser of the pinned vLLM).
"""

from __future__ import annotations

from turnout.api.backend import VLLM_PORT, Backend
from turnout.engines.container import EngineContainer, KubeObject, env_value, http_probe

# turnout's readiness timeout is what bounds a load; the startup probe must never kill a pod
# that is still loading weights, so its budget covers the longest `readyTimeoutSeconds` allowed.
# It does not follow the field itself: rollout settings must not change the pod template.
STARTUP_BUDGET_SECONDS = 86_400
STARTUP_PERIOD_SECONDS = 10
SHM_VOLUME = "dshm"


def vllm_args(backend: Backend) -> list[str]:
    """The arguments after `vllm serve`: the model first, then one `--flag=value` word per option.

    The model is the positional argument `vllm serve` documents (`--model` is deprecated there).
    Options are single words so a value starting with `-` cannot be taken for a flag.
    """
    options = backend.spec.vllm
    return [
        backend.model_name,
        f"--served-model-name={backend.served_name}",
        f"--tensor-parallel-size={backend.tensor_parallel_size}",
        f"--gpu-memory-utilization={options.gpu_memory_utilization}",
        f"--max-model-len={options.max_model_len}",
        f"--dtype={options.dtype.value}",
        f"--port={VLLM_PORT}",
        *options.extra_args,
    ]


def vllm_env(backend: Backend) -> list[KubeObject]:
    """HF_HOME on the model volume (hub downloads survive restarts), and the API key by reference."""
    env = [env_value("HF_HOME", f"{backend.model_mount_path.rstrip('/')}/huggingface")]
    key = backend.spec.vllm.api_key_secret_ref
    if key is not None:
        # vLLM reads the key from its environment; an argument would show in `ps` and the pod spec.
        env.append({"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": key.name, "key": key.key}}})
    return env


def vllm_container(backend: Backend) -> EngineContainer:
    """The vLLM container's start, environment, probes, and shared memory for tensor parallelism."""
    volumes: list[KubeObject] = []
    mounts: list[KubeObject] = []
    if backend.tensor_parallel_size > 1:
        # NCCL exchanges tensors between the GPU workers through /dev/shm; the runtime's 64 MiB is too small.
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
    return EngineContainer(
        command=["vllm", "serve"],
        args=vllm_args(backend),
        env=vllm_env(backend),
        port=VLLM_PORT,
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
