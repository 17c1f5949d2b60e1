"""From a pod, as the API returns it, to the simulator it gets: the renderer's side of the contract."""

import dataclasses
from typing import Any

import pytest

from testground.behaviour import Behaviour, Degradation
from testground.podspec import (
    PodConfigError,
    PodFiles,
    PodSim,
    SecretKeyRef,
    Shutdown,
    image_engine,
    pod_files,
    pod_shutdown,
    pod_sim,
)


def pod(
    container: dict[str, Any],
    annotations: dict[str, str] | None = None,
    phase: str = "Running",
    ip: str | None = "10.244.1.7",
    statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ml", "name": "chat-blue-abc", "uid": "u1", "annotations": annotations or {}},
        "spec": {"containers": [{"name": "engine", **container}]},
        "status": {"phase": phase, "podIP": ip, "containerStatuses": statuses or []},
    }


VLLM = {
    "image": "vllm/vllm-openai:v0.8.5",
    "args": ["--model", "/data/models/llama", "--served-model-name", "chat", "--port", "8000"],
}
OLLAMA = {
    "image": "ollama/ollama:0.12.6",
    "env": [
        {"name": "OLLAMA_HOST", "value": "0.0.0.0:11434"},
        {"name": "TURNOUT_OLLAMA_MODEL", "value": "llama3:8b"},
        {"name": "TURNOUT_SERVED_NAME", "value": "chat"},
    ],
}


@pytest.mark.parametrize(
    ("image", "engine"),
    [
        ("vllm/vllm-openai:v0.8.5", "vllm"),
        ("docker.io/vllm/vllm-openai", "vllm"),
        ("mirror:5000/vllm/vllm-openai@sha256:abc", "vllm"),
        ("ollama/ollama:0.12.6", "ollama"),
        ("busybox", None),
        ("me/vllm-openai", None),
    ],
)
def test_the_image_names_the_engine(image: str, engine: str | None) -> None:
    assert image_engine(image) == engine


def test_vllm_pod_serves_its_served_name_on_its_port() -> None:
    sim = pod_sim(pod(VLLM))
    assert sim is not None
    assert (sim.id, sim.host, sim.port, sim.engine) == ("ml/chat-blue-abc/u1", "10.244.1.7", 8000, "vllm")
    assert (sim.models, sim.root, sim.behaviour) == (("chat",), "/data/models/llama", Behaviour())


def test_vllm_without_served_name_serves_the_model_value_and_defaults_to_8000() -> None:
    sim = pod_sim(pod({"image": "vllm/vllm-openai", "args": ["--model=meta-llama/Llama-3.1-8B"]}))
    assert sim is not None
    assert (sim.models, sim.port) == (("meta-llama/Llama-3.1-8B",), 8000)
    served = pod_sim(
        pod(
            {
                "image": "vllm/vllm-openai",
                "command": ["vllm", "serve", "qwen"],
                "args": ["--port=9000", "--served-model-name", "a", "b"],
            }
        )
    )
    assert served is not None
    assert (served.models, served.root, served.port) == (("a", "b"), "qwen", 9000)


def test_vllm_key_comes_from_the_secret_the_env_names() -> None:
    keyed = {
        **VLLM,
        "env": [{"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "vllm-key", "key": "token"}}}],
    }
    sim = pod_sim(pod(keyed))
    assert sim is not None
    assert sim.api_key_ref == SecretKeyRef("ml", "vllm-key", "token")
    assert sim.config("s3cret").api_key == "s3cret"
    assert "s3cret" not in repr(sim.config("s3cret"))


def test_vllm_on_localhost_is_not_reachable_on_the_pod_ip() -> None:
    with pytest.raises(PodConfigError, match=r"--host 127\.0\.0\.1"):
        pod_sim(pod({**VLLM, "args": [*VLLM["args"], "--host", "127.0.0.1"]}))


def test_ollama_pod_starts_with_its_model_and_alias() -> None:
    sim = pod_sim(pod(OLLAMA))
    assert sim is not None
    assert (sim.engine, sim.port, sim.models) == ("ollama", 11434, ("llama3:8b", "chat"))
    assert sim.config().models == ("llama3:8b", "chat")


@pytest.mark.parametrize(
    ("value", "port"), [("0.0.0.0:11434", 11434), ("http://0.0.0.0:8080", 8080), ("0.0.0.0", 11434), (":9999", 9999)]
)
def test_ollama_listens_where_ollama_host_says(value: str, port: int) -> None:
    container = {**OLLAMA, "env": [{"name": "OLLAMA_HOST", "value": value}]}
    sim = pod_sim(pod(container))
    assert sim is not None
    assert sim.port == port


def test_ollama_without_ollama_host_is_loopback_only() -> None:
    with pytest.raises(PodConfigError, match="OLLAMA_HOST is unset"):
        pod_sim(pod({"image": "ollama/ollama"}))


def test_annotations_choose_engine_and_behaviour() -> None:
    forced = pod_sim(
        pod(
            {"image": "busybox", "args": ["--served-model-name", "x"]},
            {"sim.turnout.dev/engine": "vllm", "sim.turnout.dev/behaviour": "fail-after:30"},
        )
    )
    assert forced is not None
    assert forced.engine == "vllm"
    assert forced.behaviour == Behaviour.parse("fail-after:30")
    assert pod_sim(pod(VLLM, {"sim.turnout.dev/engine": "none"})) is None
    with pytest.raises(PodConfigError, match=r"sim\.turnout\.dev/behaviour"):
        pod_sim(pod(VLLM, {"sim.turnout.dev/behaviour": "sleepy"}))


def test_annotations_degrade_either_engine() -> None:
    degrading = {
        "sim.turnout.dev/error-ratio": "0.2",
        "sim.turnout.dev/latency": "1.5",
        "sim.turnout.dev/ttft": "0.25",
        "sim.turnout.dev/tokens-per-second": "40",
        "sim.turnout.dev/jitter": "0.1",
    }
    for container in (VLLM, OLLAMA):
        found = pod_sim(pod(container, degrading))
        assert found is not None
        assert found.degradation == Degradation(
            error_ratio=0.2, latency_seconds=1.5, ttft_seconds=0.25, tokens_per_second=40, jitter=0.1
        )
    plain = pod_sim(pod(VLLM))
    assert plain is not None
    assert plain.degradation == Degradation()


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        ("sim.turnout.dev/error-ratio", "20%"),
        ("sim.turnout.dev/latency", "-2"),
        ("sim.turnout.dev/ttft", "200ms"),
        ("sim.turnout.dev/tokens-per-second", "-40"),
        ("sim.turnout.dev/jitter", "1.5"),
    ],
)
def test_a_degradation_that_cannot_be_read_names_its_annotation(annotation: str, value: str) -> None:
    with pytest.raises(PodConfigError, match=f"annotation {annotation}: "):
        pod_sim(pod(VLLM, {annotation: value}))


def running_sim() -> PodSim:
    found = pod_sim(pod(VLLM, {"sim.turnout.dev/behaviour": "healthy"}))
    assert found is not None
    return found


def test_behaviour_and_degradation_change_a_running_simulator_and_nothing_else_does() -> None:
    running = running_sim()
    slower = dataclasses.replace(running, degradation=Degradation(latency_seconds=2))
    failing = dataclasses.replace(running, behaviour=Behaviour.parse("fail-after:0"))
    both = dataclasses.replace(slower, behaviour=failing.behaviour)
    assert running.live_update(running) == (None, None)
    assert slower.live_update(running) == (None, Degradation(latency_seconds=2))
    assert failing.live_update(running) == (Behaviour.parse("fail-after:0"), None)
    assert both.live_update(running) == (both.behaviour, both.degradation)
    paced = dataclasses.replace(running, degradation=Degradation(tokens_per_second=40, ttft_seconds=0.2))
    assert paced.live_update(running) == (None, paced.degradation)
    assert dataclasses.replace(running, port=9000).live_update(running) is None
    assert dataclasses.replace(slower, models=("other",)).live_update(running) is None


@pytest.mark.parametrize(
    "shape",
    [
        {"phase": "Pending"},
        {"ip": None},
        {"statuses": [{"name": "engine", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    ],
)
def test_only_running_containers_with_an_ip_are_served(shape: dict[str, Any]) -> None:
    assert pod_sim(pod(VLLM, **shape)) is None


def test_other_pods_get_nothing() -> None:
    assert pod_sim(pod({"image": "nginx"})) is None


def test_vllm_serve_with_the_model_first_and_single_word_flags() -> None:
    container = {
        "image": "vllm/vllm-openai:v0.11.0",
        "command": ["vllm", "serve"],
        "args": ["meta-llama/Llama-3.1-8B-Instruct", "--served-model-name=chat", "--tensor-parallel-size=2",
                 "--enable-prefix-caching", "--port=8000"],
    }  # fmt: skip
    sim = pod_sim(pod(container))
    assert sim is not None
    assert (sim.models, sim.root, sim.port) == (("chat",), "meta-llama/Llama-3.1-8B-Instruct", 8000)


def deleted(container: dict[str, Any], grace: int | None = 120, deletion_grace: int | None = None) -> dict[str, Any]:
    found = pod(container)
    found["metadata"]["deletionTimestamp"] = "2026-11-28T15:00:00Z"
    if deletion_grace is not None:
        found["metadata"]["deletionGracePeriodSeconds"] = deletion_grace
    if grace is not None:
        found["spec"]["terminationGracePeriodSeconds"] = grace
    return found


def pre_stop(seconds: int) -> dict[str, Any]:
    return {"lifecycle": {"preStop": {"sleep": {"seconds": seconds}}}}


def test_a_deleted_vllm_pod_drains_for_its_shutdown_timeout_after_its_pause() -> None:
    vllm = {**VLLM, "args": [*VLLM["args"], "--shutdown-timeout=110"], **pre_stop(5)}
    assert pod_shutdown(deleted(vllm, deletion_grace=120)) == Shutdown(pre_stop=5, drain=110, grace=120)


def test_vllm_without_a_shutdown_timeout_aborts_at_sigterm() -> None:
    # vLLM's default --shutdown-timeout is 0: abort what is in flight.
    assert pod_shutdown(deleted({**VLLM, **pre_stop(5)})) == Shutdown(pre_stop=5, drain=0, grace=120)


def test_ollama_drains_nothing_after_sigterm() -> None:
    assert pod_shutdown(deleted({**OLLAMA, **pre_stop(60)}, grace=70)) == Shutdown(pre_stop=60, drain=0, grace=70)


def test_the_deletions_grace_period_wins_and_the_kubelets_default_is_30_seconds() -> None:
    assert pod_shutdown(deleted(OLLAMA, grace=70, deletion_grace=0)).grace == 0
    assert pod_shutdown(deleted(OLLAMA, grace=None)) == Shutdown(pre_stop=0, drain=0, grace=30)


def test_turnouts_inspector_pod_is_a_file_server_over_its_claim_not_an_engine() -> None:
    from turnout.api.backend import Backend
    from turnout.engines.model_files import model_directory
    from turnout.render.inspector import render_inspector_pod

    spec = {
        "engine": "vllm",
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "storage": {"claimName": "models"}},
    }
    backend = Backend.parse("chat", "ml", spec)
    directory = model_directory(backend.model_name, backend.model_mount_path)
    assert not isinstance(directory, str)
    rendered = render_inspector_pod(backend, directory)
    running = {**rendered, "status": {"phase": "Running", "podIP": "10.244.1.9"}}
    running["metadata"]["uid"] = "u9"
    assert pod_sim(running) is None
    files = pod_files(running)
    assert files == PodFiles(
        f"ml/chat-inspect-{backend.revision}/u9",
        "10.244.1.9",
        8000,
        "ml",
        "models",
        "huggingface/hub/models--meta-llama--Llama-3.1-8B-Instruct",
    )


def test_a_file_server_over_no_claim_is_said() -> None:
    server = {"image": "python:3", "command": ["python3", "-m", "http.server", "--directory", "/srv"]}
    with pytest.raises(PodConfigError, match="on no claim the pod mounts"):
        pod_files(pod(server))
    assert pod_files(pod(VLLM)) is None
