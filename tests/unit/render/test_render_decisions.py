"""The renderer's decisions, one by one, as a user would check them in the rendered objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.render.kubelet import expand
from turnout.api.backend import Backend, InvalidSpec
from turnout.api.spec import InferenceBackendSpec
from turnout.api.status import Color
from turnout.engines.container import STARTUP_BUDGET_SECONDS, kubelet_literal
from turnout.render import render_backend, render_deployment, render_model_claim, render_service

GPU = "nvidia.com/gpu"
REPO = Path(__file__).resolve().parents[3]


def vllm_backend(**spec: Any) -> Backend:
    return Backend.parse("chat", "ml", {"engine": "vllm", "model": {"name": "org/model"}, **spec})


def ollama_backend(**spec: Any) -> Backend:
    return Backend.parse("chat", "ml", {"engine": "ollama", "model": {"name": "llama3:8b"}, **spec})


def pod_spec(backend: Backend, color: Color = Color.BLUE) -> dict[str, Any]:
    spec: dict[str, Any] = render_deployment(backend, color, 1)["spec"]["template"]["spec"]
    return spec


def container(backend: Backend, color: Color = Color.BLUE) -> dict[str, Any]:
    found: dict[str, Any] = pod_spec(backend, color)["containers"][0]
    return found


def env_of(backend: Backend, color: Color = Color.BLUE) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container(backend, color)["env"]}


@pytest.mark.parametrize(
    ("gpus", "tensor_parallel", "shm"), [(1, None, False), (2, 1, False), (2, None, True), (4, 2, True)]
)
def test_shared_memory_volume_only_with_tensor_parallelism(gpus: int, tensor_parallel: int | None, shm: bool) -> None:
    vllm = {"tensorParallelSize": tensor_parallel} if tensor_parallel else {}
    backend = vllm_backend(resources={"gpus": gpus}, vllm=vllm)
    mounts = {mount["mountPath"]: mount["name"] for mount in container(backend)["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(backend)["volumes"]}
    assert ("/dev/shm" in mounts) is shm
    if shm:
        assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory"}
        assert f"--tensor-parallel-size={backend.profile.tensor_parallel_size(backend)}" in container(backend)["args"]


def test_gpu_pods_ask_for_gpus_and_tolerate_gpu_nodes_while_cpu_pods_do_neither() -> None:
    gpu = vllm_backend(resources={"gpus": 2, "cpu": "8", "memory": "64Gi"})
    resources = container(gpu)["resources"]
    assert resources["limits"] == resources["requests"] == {"cpu": "8", "memory": "64Gi", GPU: "2"}
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod_spec(gpu)["tolerations"]

    cpu = ollama_backend(resources={"cpu": "4"})
    assert GPU not in container(cpu)["resources"]["limits"]
    assert "tolerations" not in pod_spec(cpu)

    ollama_gpu = ollama_backend(resources={"gpus": 1})
    assert container(ollama_gpu)["resources"]["limits"] == {GPU: "1"}
    assert pod_spec(ollama_gpu)["tolerations"][0]["key"] == GPU


def test_user_tolerations_follow_the_gpu_toleration() -> None:
    mine = {"key": "dedicated", "operator": "Equal", "value": "inference", "effect": "NoSchedule"}
    backend = vllm_backend(template={"tolerations": [mine]})
    assert [t["key"] for t in pod_spec(backend)["tolerations"]] == [GPU, "dedicated"]


def test_api_key_reaches_vllm_only_by_secret_reference() -> None:
    backend = vllm_backend(vllm={"apiKeySecretRef": {"name": "vllm-key", "key": "token"}})
    rendered = container(backend)
    assert env_of(backend)["VLLM_API_KEY"] == {"secretKeyRef": {"name": "vllm-key", "key": "token"}}
    words = rendered["command"] + rendered["args"]
    assert not [word for word in words if "api-key" in word or "vllm-key" in word or "token" in word]


def test_vllm_starts_as_vllm_serve_with_the_model_first_and_the_served_name() -> None:
    backend = vllm_backend(
        model={"name": "/data/models/llama", "servedName": "chat-v1"},
        vllm={"maxModelLen": 4096, "dtype": "bfloat16", "extraArgs": ["--enable-prefix-caching"]},
    )
    rendered = container(backend)
    assert rendered["command"] == ["vllm", "serve"]
    assert rendered["args"] == [
        "/data/models/llama",
        "--served-model-name=chat-v1",
        "--tensor-parallel-size=1",
        "--gpu-memory-utilization=0.9",
        "--max-model-len=4096",
        "--dtype=bfloat16",
        "--port=8000",
        "--shutdown-timeout=115",
        "--enable-prefix-caching",
    ]


def test_hub_cache_and_model_volume_share_the_mount() -> None:
    backend = vllm_backend(model={"name": "org/model", "storage": {"claimName": "weights", "mountPath": "/models/"}})
    assert env_of(backend)["HF_HOME"] == "/models/huggingface"
    assert {"name": "models", "mountPath": "/models/"} in container(backend)["volumeMounts"]
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "weights"}} in pod_spec(backend)["volumes"]
    scratch = vllm_backend()
    assert {"name": "models", "emptyDir": {}} in pod_spec(scratch)["volumes"]


def test_owned_labels_cannot_be_overridden_by_pod_labels() -> None:
    # Backend.parse refuses such labels; the renderer holds even for a Backend built without it.
    spec = InferenceBackendSpec.model_validate(
        {
            "engine": "vllm",
            "model": {"name": "m"},
            "template": {
                "podLabels": {"turnout.dev/color": "green", "app.kubernetes.io/managed-by": "me", "team": "ml"}
            },
        }
    )
    backend = Backend(name="chat", namespace="ml", spec=spec)
    labels = render_deployment(backend, Color.BLUE, 1)["spec"]["template"]["metadata"]["labels"]
    assert labels["turnout.dev/color"] == "blue"
    assert labels["app.kubernetes.io/managed-by"] == "turnout"
    assert labels["team"] == "ml"
    with pytest.raises(InvalidSpec, match="podLabels"):
        vllm_backend(template={"podLabels": {"turnout.dev/color": "green"}})


def test_deployment_selects_by_backend_and_color_and_labels_the_revision() -> None:
    backend = vllm_backend()
    deployment = render_deployment(backend, Color.GREEN, 3)
    assert deployment["metadata"]["name"] == "chat-green"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["selector"] == {
        "matchLabels": {"turnout.dev/backend": "chat", "turnout.dev/color": "green"}
    }
    assert deployment["metadata"]["labels"]["turnout.dev/revision"] == backend.revision
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["turnout.dev/revision"] == backend.revision
    assert pod_labels["turnout.dev/color"] == "green"


def test_service_targets_the_named_port_of_the_active_color_on_both_engines() -> None:
    for backend in (vllm_backend(service={"port": 80}), ollama_backend(service={"port": 80})):
        service = render_service(backend, Color.GREEN)
        assert service["spec"]["selector"] == {"turnout.dev/backend": "chat", "turnout.dev/color": "green"}
        assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
        assert "turnout.dev/revision" not in service["metadata"]["labels"]
        port = container(backend)["ports"][0]
        assert port["name"] == "http"
        assert port["containerPort"] == backend.engine_port


def test_rollout_settings_leave_the_pods_untouched() -> None:
    # A Deployment that changed here would restart the serving color outside any cutover.
    quick = vllm_backend(rollout={"bakeSeconds": 0, "readyTimeoutSeconds": 60, "autoPromote": False})
    slow = vllm_backend(rollout={"bakeSeconds": 3600, "readyTimeoutSeconds": 86_400})
    assert render_deployment(quick, Color.BLUE, 1) == render_deployment(slow, Color.BLUE, 1)


def test_startup_probe_outlasts_the_longest_ready_timeout() -> None:
    longest = vllm_backend(rollout={"readyTimeoutSeconds": STARTUP_BUDGET_SECONDS})
    with pytest.raises(InvalidSpec, match="readyTimeoutSeconds"):
        vllm_backend(rollout={"readyTimeoutSeconds": STARTUP_BUDGET_SECONDS + 1})
    probe = container(longest)["startupProbe"]
    assert probe["httpGet"] == {"path": "/health", "port": "http"}
    assert probe["periodSeconds"] * probe["failureThreshold"] >= longest.spec.rollout.ready_timeout_seconds
    assert container(longest)["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container(longest)["readinessProbe"]["httpGet"]["path"] == "/health"


def test_ollama_gets_its_model_names_from_the_environment_only() -> None:
    backend = ollama_backend(
        model={"name": "qwen2.5:0.5b", "servedName": "chat"}, ollama={"keepAlive": "-1", "contextLength": 4096}
    )
    env = env_of(backend, Color.GREEN)
    assert env["TURNOUT_OLLAMA_MODEL"] == "qwen2.5:0.5b"
    assert env["TURNOUT_SERVED_NAME"] == "chat"
    assert env["OLLAMA_HOST"] == "0.0.0.0:11434"
    assert env["OLLAMA_KEEP_ALIVE"] == "-1"
    assert env["OLLAMA_CONTEXT_LENGTH"] == "4096"
    assert env["OLLAMA_NUM_PARALLEL"] == "4"
    rendered = container(backend)
    assert not [word for word in rendered["command"] + rendered["args"] if "qwen" in word or "chat" in word]
    assert rendered["livenessProbe"]["httpGet"]["path"] == "/api/version"
    assert "exec" in rendered["readinessProbe"]
    assert "OLLAMA_CONTEXT_LENGTH" not in env_of(ollama_backend())


def test_each_ollama_color_keeps_its_own_models_directory_on_the_volume() -> None:
    backend = ollama_backend(model={"name": "llama3", "storage": {"mountPath": "/data/models"}})
    assert env_of(backend, Color.BLUE)["OLLAMA_MODELS"] == "/data/models/ollama/blue"
    assert env_of(backend, Color.GREEN)["OLLAMA_MODELS"] == "/data/models/ollama/green"


def test_user_env_follows_turnouts_own() -> None:
    backend = vllm_backend(template={"env": [{"name": "NCCL_DEBUG", "value": "INFO"}]})
    names = [entry["name"] for entry in container(backend)["env"]]
    assert names == ["HF_HOME", "NCCL_DEBUG"]


def test_template_overrides_reach_the_pod() -> None:
    backend = vllm_backend(
        template={
            "image": "registry.example/vllm:patched",
            "nodeSelector": {"pool": "gpu"},
            "podAnnotations": {"example.com/owner": "ml"},
            "serviceAccountName": "inference",
            "imagePullSecrets": ["pull"],
            "priorityClassName": "high",
            "affinity": {"nodeAffinity": {}},
        }
    )
    deployment = render_deployment(backend, Color.BLUE, 1)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example/vllm:patched"
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"example.com/owner": "ml"}
    assert pod["serviceAccountName"] == "inference"
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    assert pod["priorityClassName"] == "high"
    assert pod["affinity"] == {"nodeAffinity": {}}
    bare = pod_spec(vllm_backend())
    assert not {"nodeSelector", "serviceAccountName", "imagePullSecrets", "priorityClassName", "affinity"} & set(bare)


def test_model_claim_only_when_turnout_creates_it() -> None:
    assert render_model_claim(vllm_backend(model={"name": "m", "storage": {"claimName": "weights"}})) is None
    assert render_model_claim(vllm_backend()) is None
    backend = vllm_backend(
        model={
            "name": "m",
            "storage": {"create": True, "size": "50Gi", "storageClassName": "nfs", "accessModes": ["ReadWriteMany"]},
        }
    )
    claim = render_model_claim(backend)
    assert claim is not None
    assert claim["metadata"]["name"] == "chat-models"
    assert claim["metadata"]["annotations"] == {"turnout.dev/created-by": "turnout"}
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "50Gi"}},
        "storageClassName": "nfs",
    }
    assert [obj["kind"] for obj in render_backend(backend, Color.BLUE, Color.BLUE)] == [
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
    ]


def test_switching_the_fallback_example_to_ollama_keeps_what_clients_see() -> None:
    example = yaml.safe_load((REPO / "examples" / "vllm-to-ollama-fallback.yaml").read_text())
    on_vllm = Backend.parse("support-bot", "ml", example["spec"])
    switched = {**example["spec"], "engine": "ollama", "model": {**example["spec"]["model"], "name": "qwen2.5:7b"}}
    on_ollama = Backend.parse("support-bot", "ml", switched)
    before, after = render_service(on_vllm, Color.BLUE), render_service(on_ollama, Color.BLUE)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["name"] == before["metadata"]["name"]
    assert env_of(on_ollama)["TURNOUT_SERVED_NAME"] == "support-bot"
    assert "--served-model-name=support-bot" in container(on_vllm)["args"]
    assert on_ollama.revision != on_vllm.revision


def test_kubelet_variable_syntax_in_user_strings_never_reaches_the_engine_expanded() -> None:
    """`$(VLLM_API_KEY)` in a model or an argument would be the key in argv and vLLM's start-up log."""
    reference, escaped_reference = "$(VLLM_API_KEY)", "$$(VLLM_API_KEY)"
    backend = vllm_backend(
        model={"name": f"org/{reference}"},
        vllm={
            "apiKeySecretRef": {"name": "vllm-key", "key": "token"},
            "extraArgs": [f"--chat-template={reference}", escaped_reference],
        },
        template={"env": [{"name": "SHOWN", "value": reference}, {"name": "ALSO", "value": escaped_reference}]},
    )
    found = container(backend)
    secret = {"VLLM_API_KEY": "sk-canary-5e1d"}.get
    args = [expand(word, secret) for word in found["args"]]
    assert args[0] == f"org/{reference}"
    assert args[-2:] == [f"--chat-template={reference}", escaped_reference]
    env = {entry["name"]: expand(entry["value"], secret) for entry in found["env"] if "value" in entry}
    assert (env["SHOWN"], env["ALSO"]) == (reference, escaped_reference)
    assert "sk-canary-5e1d" not in repr([args, env])


@given(st.text(st.sampled_from("$()ab"), max_size=12) | st.text(max_size=12))
def test_a_kubelet_literal_expands_back_to_itself(text: str) -> None:
    assert expand(kubelet_literal(text), lambda name: "<" + name + ">") == text


# -- drain ----------------------------------------------------------------------------------------


def drain_of(backend: Backend) -> tuple[int, int | None, list[str]]:
    """The grace period, the preStop sleep (None without one) and the --shutdown-timeout words."""
    spec = pod_spec(backend)
    sleep = spec["containers"][0].get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds")
    flags = [arg for arg in spec["containers"][0]["args"] if arg.startswith("--shutdown-timeout")]
    return spec["terminationGracePeriodSeconds"], sleep, flags


def test_vllm_drains_for_two_minutes_by_default_and_is_told_to_finish_what_it_serves() -> None:
    # vLLM's own default, --shutdown-timeout 0, would abort every stream at SIGTERM.
    assert drain_of(vllm_backend()) == (120, 5, ["--shutdown-timeout=115"])


def test_ollama_drains_in_its_pause_since_it_cuts_streams_at_sigterm() -> None:
    assert drain_of(ollama_backend()) == (70, 60, [])


@pytest.mark.parametrize(
    ("drain", "expected"),
    [
        ({"preStopSeconds": 1, "gracePeriodSeconds": 4}, (4, 1, ["--shutdown-timeout=3"])),
        ({"preStopSeconds": 0, "gracePeriodSeconds": 30}, (30, None, ["--shutdown-timeout=30"])),
        ({"preStopSeconds": 300}, (415, 300, ["--shutdown-timeout=115"])),
        ({"gracePeriodSeconds": 2}, (2, 1, ["--shutdown-timeout=1"])),
        ({"gracePeriodSeconds": 600}, (600, 5, ["--shutdown-timeout=595"])),
    ],
)
def test_vllm_drain_as_set(drain: dict[str, int], expected: tuple[int, int | None, list[str]]) -> None:
    assert drain_of(vllm_backend(template={"drain": drain})) == expected


@pytest.mark.parametrize(
    ("drain", "expected"),
    [
        ({"preStopSeconds": 2, "gracePeriodSeconds": 5}, (5, 2, [])),
        ({"preStopSeconds": 300}, (310, 300, [])),
        ({"gracePeriodSeconds": 300}, (300, 295, [])),
        ({"gracePeriodSeconds": 3}, (3, 2, [])),
    ],
)
def test_ollama_drain_as_set(drain: dict[str, int], expected: tuple[int, int | None, list[str]]) -> None:
    assert drain_of(ollama_backend(template={"drain": drain})) == expected


def test_a_drain_at_the_defaults_keeps_the_revision_only_when_unset() -> None:
    # Unset: the revision of backends written before `drain`; set, even to the defaults: a new one.
    assert vllm_backend().revision == vllm_backend(template={}).revision
    assert vllm_backend().revision != vllm_backend(template={"drain": {"gracePeriodSeconds": 120}}).revision


def test_the_shutdown_timeout_is_refused_in_extra_args() -> None:
    with pytest.raises(InvalidSpec, match=r"set template\.drain instead"):
        vllm_backend(vllm={"extraArgs": ["--shutdown-timeout=30"]})
    with pytest.raises(InvalidSpec, match=r"set template\.drain instead"):
        vllm_backend(vllm={"extraArgs": ["--shutdown_timeout=30"]})
