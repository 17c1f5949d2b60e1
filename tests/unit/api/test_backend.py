"""Backend.parse: the defaults a model owner gets, and a revision that changes only when pods must."""

from __future__ import annotations

import copy
import sys
import unicodedata
from typing import Any

import pytest

from tests.unit.api.invalid_specs import VALID_OLLAMA_SPEC, VALID_SPEC, ollama, vllm
from turnout.api.backend import Backend
from turnout.api.spec import WHITESPACE, AccessMode, Dtype, Engine, ServiceType, Strategy
from turnout.engines.ollama import OLLAMA
from turnout.engines.vllm import VLLM


def parse(spec: dict[str, Any], name: str = "chat") -> Backend:
    return Backend.parse(name, "ml", spec)


def test_a_minimal_vllm_backend_gets_one_gpu_and_the_vllm_defaults() -> None:
    backend = parse(VALID_SPEC)
    assert backend.engine is Engine.VLLM
    assert backend.served_name == "chat"
    assert backend.gpus == 1
    assert backend.profile.tensor_parallel_size(backend) == 1
    assert backend.image == VLLM.image
    assert backend.engine_port == 8000
    assert backend.service_name == "chat"
    assert backend.claim_name is None
    assert backend.model_mount_path == "/data/models"
    vllm_options = backend.spec.vllm
    assert (vllm_options.gpu_memory_utilization, vllm_options.max_model_len) == (0.9, 8192)
    assert vllm_options.dtype is Dtype.AUTO
    assert vllm_options.api_key_secret_ref is None
    assert backend.spec.replicas == 1
    assert backend.spec.service.port == 8000
    assert backend.spec.service.type is ServiceType.CLUSTER_IP


def test_a_minimal_ollama_backend_runs_on_cpu() -> None:
    backend = parse(VALID_OLLAMA_SPEC)
    assert backend.gpus == 0
    assert backend.image == OLLAMA.image
    assert backend.engine_port == 11434
    assert backend.spec.ollama.keep_alive == "24h"
    assert backend.spec.ollama.num_parallel == 4
    assert backend.spec.ollama.context_length is None


def test_rollout_defaults_suit_slow_loading_weights() -> None:
    rollout = parse(VALID_SPEC).spec.rollout
    assert rollout.strategy is Strategy.BLUE_GREEN
    assert rollout.auto_promote is True
    assert rollout.auto_rollback is True
    assert rollout.ready_timeout_seconds == 1800
    assert (rollout.bake_seconds, rollout.scale_down_delay_seconds) == (120, 30)
    checks = rollout.checks
    assert (checks.interval_seconds, checks.success_threshold, checks.failure_threshold) == (5, 3, 3)
    assert checks.smoke_request is True


def test_ollama_may_use_gpus() -> None:
    assert parse(ollama(resources={"gpus": 1})).gpus == 1


def test_storage_defaults_to_a_claim_named_after_the_backend() -> None:
    backend = parse(vllm(model={"name": "m", "storage": {}}))
    assert backend.claim_name == "chat-models"
    storage = backend.spec.model.storage
    assert storage is not None
    assert storage.create is False
    assert storage.size == "100Gi"
    assert storage.access_modes == [AccessMode.READ_WRITE_MANY]


def test_explicit_names_win_over_the_backend_name() -> None:
    backend = parse(
        vllm(
            model={"name": "m", "servedName": "llama", "storage": {"claimName": "weights", "mountPath": "/w"}},
            service={"name": "llm"},
            template={"image": "registry.example/vllm:patched"},
        )
    )
    assert (backend.served_name, backend.claim_name, backend.model_mount_path) == ("llama", "weights", "/w")
    assert backend.service_name == "llm"
    assert backend.image == "registry.example/vllm:patched"


def test_a_backend_name_that_is_no_service_name_is_fine_with_an_explicit_service() -> None:
    assert parse(vllm(service={"name": "chat-v2"}), name="chat.v2").service_name == "chat-v2"


def test_the_spec_as_stored_with_the_crd_defaults_parses_to_the_same_backend() -> None:
    """The API server fills in the CRD's defaults; the operator must see no difference."""
    stored = vllm(vllm={"gpuMemoryUtilization": 0.9, "maxModelLen": 8192, "dtype": "auto", "extraArgs": []})
    assert parse(stored).spec == parse(VALID_SPEC).spec
    assert parse(stored).revision == parse(VALID_SPEC).revision


def test_valid_extra_args_pass() -> None:
    args = ["--enable-prefix-caching", "--max-num-seqs", "64", "--chat-template={{ messages }}", "--model-impl=vllm"]
    assert parse(vllm(vllm={"extraArgs": args})).spec.vllm.extra_args == args


def test_the_spec_is_immutable_once_parsed() -> None:
    backend = parse(VALID_SPEC)
    with pytest.raises(ValueError, match="frozen"):
        backend.spec.replicas = 3  # type: ignore[misc]


# --- revision -------------------------------------------------------------------------------

BASE = vllm(
    model={"name": "meta-llama/Llama-3.1-8B-Instruct", "storage": {"claimName": "models", "create": True}},
    resources={"gpus": 2, "memory": "64Gi"},
    vllm={"tensorParallelSize": 2, "extraArgs": ["--enable-prefix-caching"]},
)


def changed(path: str, value: Any, spec: dict[str, Any] = BASE) -> dict[str, Any]:
    """`spec` with the field at a dotted camelCase path set to `value`."""
    result = copy.deepcopy(spec)
    *parents, leaf = path.split(".")
    node = result
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return result


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("rollout.bakeSeconds", 600),
        ("rollout.strategy", "Recreate"),
        ("rollout.autoPromote", False),
        ("rollout.readyTimeoutSeconds", 3600),
        ("rollout.checks", {"intervalSeconds": 10, "smokeRequest": False}),
        ("replicas", 4),
        ("service.port", 80),
        ("service.type", "LoadBalancer"),
        ("ollama.keepAlive", "-1"),
        ("model.storage.size", "500Gi"),
        ("model.storage.deleteClaimOnDelete", True),
        ("model.storage.storageClassName", "fast"),
    ],
)
def test_changes_that_do_not_shape_the_pods_keep_the_revision(path: str, value: Any) -> None:
    assert parse(changed(path, value)).revision == parse(BASE).revision


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("model.name", "meta-llama/Llama-3.1-70B-Instruct"),
        ("model.servedName", "llama"),
        ("model.storage.claimName", "other-models"),
        ("model.storage.mountPath", "/models"),
        ("vllm.extraArgs", ["--enable-prefix-caching", "--max-num-seqs=64"]),
        ("vllm.gpuMemoryUtilization", 0.85),
        ("vllm.tensorParallelSize", 1),
        ("resources.gpus", 4),
        ("resources.memory", "96Gi"),
        ("template.image", "vllm/vllm-openai:v0.33.0"),
        ("template.env", [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}]),
        ("template.nodeSelector", {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}),
        ("engine", "ollama"),
    ],
)
def test_changes_that_shape_the_pods_give_a_new_revision(path: str, value: Any) -> None:
    spec = changed(path, value)
    if path == "engine":
        spec = changed("model.name", "llama3.1:8b", spec)
    assert parse(spec).revision != parse(BASE).revision


def test_the_inactive_engines_options_do_not_count() -> None:
    base = ollama()
    assert parse(changed("vllm.maxModelLen", 4096, base)).revision == parse(base).revision
    assert parse(changed("ollama.numParallel", 8, base)).revision != parse(base).revision


def test_the_served_name_counts_as_resolved_not_as_written() -> None:
    """Writing the default explicitly is no change; renaming the backend is (clients see another name)."""
    assert parse(changed("model.servedName", "chat")).revision == parse(BASE).revision
    assert parse(BASE, name="chat2").revision != parse(BASE).revision


def test_revision_does_not_depend_on_key_order() -> None:
    reordered = dict(reversed(list(copy.deepcopy(BASE).items())))
    assert parse(reordered).revision == parse(BASE).revision


def test_revision_is_short_hex_and_stable_across_releases() -> None:
    """A change here restarts every backend in every cluster on upgrade: only with a reason (new image)."""
    assert parse(VALID_SPEC).revision == "d8b80835ec"


def test_each_engine_serves_its_own_model_so_switching_engine_is_one_setting() -> None:
    spec = {
        "engine": "vllm",
        "model": {"name": "Qwen/Qwen2.5-7B-Instruct", "servedName": "bot"},
        "ollama": {"model": "qwen2.5:7b-instruct"},
    }
    on_vllm = parse(spec)
    on_ollama = parse({**spec, "engine": "ollama"})
    assert on_vllm.model_name == "Qwen/Qwen2.5-7B-Instruct"
    assert on_ollama.model_name == "qwen2.5:7b-instruct"
    assert on_vllm.served_name == on_ollama.served_name == "bot"
    assert on_vllm.revision != on_ollama.revision
    assert parse({**spec, "vllm": {"model": "/data/models/qwen"}}).model_name == "/data/models/qwen"


def test_whitespace_is_unicodes_white_space() -> None:
    """WHITESPACE holds what WHITESPACE_CLASS names in both layers' regexes, as Python sees it."""
    characters = (chr(code) for code in range(sys.maxunicode + 1))
    separators = {character for character in characters if unicodedata.category(character) in {"Zs", "Zl", "Zp"}}
    assert separators | set("\t\n\v\f\r\x85") == WHITESPACE
    # Python's str.isspace() takes these for whitespace too; Unicode does not, nor do the patterns.
    assert not WHITESPACE & set("\x1c\x1d\x1e\x1f")
