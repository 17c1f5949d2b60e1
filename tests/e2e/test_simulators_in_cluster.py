"""Engine simulators on the test ground: each engine pod's IP answers as its engine would, and a
pod annotation changes how it behaves while it runs (the way a bake test makes green fail)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from testground.podspec import BEHAVIOUR_ANNOTATION
from testground.pytest_fixtures import KubeCluster
from testground.waiting import wait_for

pytestmark = pytest.mark.e2e

TIMEOUT = 60.0  # seconds for anything the cluster or the supervisor does on its own
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture
def core(kube_cluster: KubeCluster, api_client: client.ApiClient) -> client.CoreV1Api:
    if not kube_cluster.local:
        pytest.skip("needs the test ground's simulators")
    return client.CoreV1Api(api_client)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    # trust_env=False: never through a proxy, only straight to the pod network.
    with httpx.Client(trust_env=False, timeout=2.0) as session:
        yield session


def engine_pod(name: str, container: dict[str, Any], behaviour: str | None = None) -> dict[str, Any]:
    annotations = {BEHAVIOUR_ANNOTATION: behaviour} if behaviour else {}
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"tolerations": [GPU_TOLERATION], "containers": [{"name": "engine", **container}]},
    }


def running_ip(core: client.CoreV1Api, namespace: str, name: str) -> str:
    def ip() -> str | None:
        pod = core.read_namespaced_pod(name, namespace)
        return pod.status.pod_ip if pod.status.phase == "Running" else None

    return wait_for(ip, timeout=TIMEOUT, what=f"pod {namespace}/{name} Running with an IP")


def annotate(core: client.CoreV1Api, namespace: str, name: str, behaviour: str) -> None:
    core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": {BEHAVIOUR_ANNOTATION: behaviour}}})


def status_of(http: httpx.Client, url: str, **kwargs: Any) -> int | None:
    try:
        return http.get(url, **kwargs).status_code
    except httpx.TransportError:
        return None  # refused, reset: nothing answers there


def test_vllm_pod_serves_with_its_secret_key_and_fails_when_annotated(
    core: client.CoreV1Api, namespace: str, http: httpx.Client
) -> None:
    core.create_namespaced_secret(namespace, {"metadata": {"name": "vllm-key"},
                                              "data": {"token": base64.b64encode(b"s3cret").decode()}})  # fmt: skip
    container = {
        "image": "vllm/vllm-openai:v0.11.0",
        "args": ["--model", "/data/models/llama", "--served-model-name", "chat", "--port", "8000"],
        "env": [{"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "vllm-key", "key": "token"}}}],
    }
    core.create_namespaced_pod(namespace, engine_pod("green", container))
    base = f"http://{running_ip(core, namespace, 'green')}:8000"
    key = {"Authorization": "Bearer s3cret"}

    wait_for(lambda: status_of(http, f"{base}/health") == 200, timeout=TIMEOUT, what=f"{base}/health")
    assert status_of(http, f"{base}/v1/models") == 401
    assert [m["id"] for m in http.get(f"{base}/v1/models", headers=key).json()["data"]] == ["chat"]

    # Green starts failing during the bake.
    annotate(core, namespace, "green", "fail-after:0")
    wait_for(lambda: status_of(http, f"{base}/health") == 503, timeout=TIMEOUT, what=f"{base}/health to fail")
    assert status_of(http, f"{base}/v1/models", headers=key) == 503

    annotate(core, namespace, "green", "healthy")
    wait_for(lambda: status_of(http, f"{base}/health") == 200, timeout=TIMEOUT, what=f"{base}/health to recover")


def test_ollama_pod_lists_its_model_and_alias_and_a_slow_start_refuses_until_it_ends(
    kube_cluster: KubeCluster, core: client.CoreV1Api, namespace: str, http: httpx.Client
) -> None:
    container = {
        "image": "ollama/ollama:0.12.6",
        "env": [{"name": "OLLAMA_HOST", "value": "0.0.0.0:11434"},
                {"name": "TURNOUT_OLLAMA_MODEL", "value": "llama3:8b"},
                {"name": "TURNOUT_SERVED_NAME", "value": "chat"}],
    }  # fmt: skip
    # Long enough that it cannot end by itself during the test: the annotation ends it.
    core.create_namespaced_pod(namespace, engine_pod("loading", container, behaviour="slow-start:600"))
    base = f"http://{running_ip(core, namespace, 'loading')}:11434"
    supervisor = kube_cluster.supervisor
    assert supervisor is not None

    def loading() -> list[dict[str, Any]]:
        return [s for s in supervisor.simulators()
                if s["id"].startswith(f"{namespace}/loading/") and s["behaviour"] == "slow-start:600"]  # fmt: skip

    [simulator] = wait_for(loading, timeout=TIMEOUT, what="the supervisor to run the slow starter")
    assert not simulator["listening"]
    assert status_of(http, f"{base}/") is None

    annotate(core, namespace, "loading", "healthy")
    wait_for(lambda: status_of(http, f"{base}/") == 200, timeout=TIMEOUT, what=f"{base}/ to answer")
    names = [m["name"] for m in http.get(f"{base}/api/tags").json()["models"]]
    assert names == ["chat:latest", "llama3:8b"]  # most recently modified first, as Ollama lists


def test_deleting_the_pod_stops_its_simulator(core: client.CoreV1Api, namespace: str, http: httpx.Client) -> None:
    container = {"image": "vllm/vllm-openai:v0.11.0", "args": ["--model", "m", "--port", "8000"]}
    core.create_namespaced_pod(namespace, engine_pod("gone", container))
    url = f"http://{running_ip(core, namespace, 'gone')}:8000/v1/models"
    wait_for(lambda: status_of(http, url) == 200, timeout=TIMEOUT, what=url)
    assert [m["id"] for m in http.get(url).json()["data"]] == ["m"]

    core.delete_namespaced_pod("gone", namespace, grace_period_seconds=0)
    wait_for(lambda: status_of(http, url) is None, timeout=TIMEOUT, what=f"{url} to stop answering")
