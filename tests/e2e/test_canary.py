"""Canary cutovers on a real control plane, as a platform team runs them: traffic in steps, each
step judged, any failure puts all traffic back on the stable revision.

Clients follow the stable Service's EndpointSlices as kube-proxy does; engines are the test
ground's simulators on the pods' IPs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client, watch

from testground.waiting import wait_for
from tests.e2e.harness import (
    FAST_ROLLOUT,
    Backends,
    EndpointClient,
    InBackground,
    OperatorProcess,
    vllm_spec,
    wait_seconds,
)
from turnout.api.backend import Backend
from turnout.api.labels import BACKEND_LABEL

pytestmark = pytest.mark.e2e

NEW_MODEL = "meta-llama/Llama-3.2-3B-Instruct"
GPU = "nvidia.com/gpu"


@pytest.fixture(autouse=True)
def engines_are_simulated(kube_cluster: Any) -> None:
    if not kube_cluster.local:
        pytest.skip("needs the local test ground: simulated engines on the pod IPs")


def canary_spec(steps: list[dict[str, Any]], *, replicas: int = 4, max_surge: int = 1, **more: Any) -> dict[str, Any]:
    canary: dict[str, Any] = {"steps": steps, "maxSurge": max_surge}
    canary |= more.pop("canary", {})
    rollout = {
        **FAST_ROLLOUT,
        "strategy": "Canary",
        "canary": canary,
        "checks": more.pop("checks", FAST_ROLLOUT["checks"]),
    }
    return vllm_spec(replicas=replicas, rollout=rollout, **more)


def revision(backends: Backends, spec: dict[str, Any]) -> str:
    return Backend.parse("chat", backends.namespace, spec).revision


def wait_step(backends: Backends, step: int, phase: str, timeout: float = 90) -> dict[str, Any]:
    """Wait until the canary is at `step` in `phase`; its status."""

    def there(status: dict[str, Any]) -> dict[str, Any] | None:
        at = status.get("phase") == phase and (status.get("canary") or {}).get("step") == step
        return status if at else None

    found: dict[str, Any] = backends.wait("chat", there, timeout=timeout, what=f"{phase} at step {step}")
    return found


def share_of_requests(backends: Backends, canary_ips: set[str], requests: int = 200) -> float:
    """Percent of `requests` chat completions answered by the canary's pods, each sent to the next of
    the Service's ready endpoints (read afresh every 20 requests), as kube-proxy spreads them."""
    answered = 0
    endpoints: list[tuple[str, int]] = []
    with httpx.Client(timeout=2, trust_env=False) as http:
        for index in range(requests):
            if index % 20 == 0:
                endpoints = backends.ready_endpoints("chat")
            ip, port = endpoints[index % len(endpoints)]
            body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            http.post(f"http://{ip}:{port}/v1/chat/completions", json=body).raise_for_status()
            answered += ip in canary_ips
    return 100 * answered / requests


class PodCount(InBackground):
    """The most engine pods of the backend that existed at once, from a watch: every pod counts from
    its creation to its deletion, terminating or not."""

    def __init__(self, backends: Backends) -> None:
        super().__init__()
        self.backends = backends
        self.most = 0
        self.started = threading.Event()

    def loop(self, stop: threading.Event) -> None:
        core = self.backends.core
        selector = f"{BACKEND_LABEL}=chat"
        listed = core.list_namespaced_pod(self.backends.namespace, label_selector=selector)
        alive = {pod.metadata.name for pod in listed.items}
        self.most = len(alive)
        self.started.set()
        version = listed.metadata.resource_version
        while not stop.is_set():
            stream = watch.Watch().stream(
                core.list_namespaced_pod,
                self.backends.namespace,
                label_selector=selector,
                resource_version=version,
                timeout_seconds=1,
            )
            for change in stream:
                pod = change["object"]
                version = pod.metadata.resource_version
                if change["type"] == "DELETED":
                    alive.discard(pod.metadata.name)
                else:
                    alive.add(pod.metadata.name)
                self.most = max(self.most, len(alive))


def free_gpus(core: client.CoreV1Api) -> int:
    """GPUs of all nodes not requested by a pod that is still there."""
    allocatable = sum(int((node.status.allocatable or {}).get(GPU, 0)) for node in core.list_node().items)
    requested = 0
    for pod in core.list_pod_for_all_namespaces().items:
        if pod.status.phase in ("Succeeded", "Failed"):
            continue
        for container in pod.spec.containers:
            requested += int(((container.resources and container.resources.requests) or {}).get(GPU, 0))
    return allocatable - requested


# -- 1. without a mesh, the share of requests follows the steps ---------------------------------


def test_canary_without_a_mesh_moves_the_share_of_requests_in_steps(
    operator: OperatorProcess, backends: Backends
) -> None:
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]
    backends.create("chat", canary_spec(steps))
    backends.wait_phase("chat", "Healthy", timeout=90)
    new = canary_spec(steps, model=NEW_MODEL)
    new_revision = revision(backends, new)
    shares: dict[int, float] = {}
    with EndpointClient(backends, "chat") as clients:
        backends.replace_spec("chat", new)
        for step, weight in ((1, 25), (3, 50)):
            status = wait_step(backends, step, "Paused")
            canary_ips = backends.pod_ips("chat", "green")
            shares[weight] = share_of_requests(backends, canary_ips)
            assert status["canary"]["trafficShare"] == weight
            backends.annotate("chat", {"turnout.dev/promote": f"{new_revision}/{step}"})
        backends.wait_status("chat", timeout=120, activeColor="green", phase="Healthy")
        sent = clients.sent
        wait_seconds(lambda: clients.sent >= sent + 10, timeout=30, what="10 requests after the canary ended")
    print(f"\nshare of requests on the canary per step: {shares}")
    for weight, share in shares.items():
        assert abs(share - weight) <= 10, shares
    assert clients.failures == [], clients.failures[:5]
    assert backends.service_selector("chat") == {"turnout.dev/backend": "chat", "turnout.dev/color": "green"}
    reasons = [reason for _, reason, _ in backends.events("chat")]
    assert reasons.count("CanaryStep") == 4  # 25, pause, 50, pause
    assert reasons.count("Switched") == 2  # the first revision, then the canary's end


# -- 2. maxSurge 0 on full GPU nodes ----------------------------------------------------------


def test_max_surge_zero_completes_on_full_gpu_nodes_without_an_extra_pod(
    operator: OperatorProcess, backends: Backends
) -> None:
    core = backends.core
    wait_seconds(lambda: free_gpus(core) == 16, timeout=90, what="all 16 GPUs of the test ground free")
    steps = [{"setWeight": 25}, {"setWeight": 50}, {"setWeight": 75}]
    # 4 replicas of 4 GPUs fill both 8-GPU nodes: a fifth pod could not be scheduled.
    full = {"gpus": 4}
    backends.create("chat", canary_spec(steps, max_surge=0, resources=full))
    backends.wait_phase("chat", "Healthy", timeout=90)
    assert free_gpus(core) == 0
    new = canary_spec(steps, max_surge=0, resources=full, model=NEW_MODEL)
    with PodCount(backends) as pods, EndpointClient(backends, "chat") as clients:
        assert pods.started.wait(10)
        backends.replace_spec("chat", new)
        backends.wait_status("chat", timeout=180, activeColor="green", phase="Healthy")
    assert pods.most == 4, f"{pods.most} engine pods existed at once"
    no_endpoint = [failure for failure in clients.failures if failure == "no ready endpoint"]
    assert no_endpoint == []


# -- 6. pause, abort, operator killed --------------------------------------------------------


def test_abort_mid_step_puts_all_traffic_back_on_stable(operator: OperatorProcess, backends: Backends) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    backends.create("chat", canary_spec(steps))
    backends.wait_phase("chat", "Healthy", timeout=90)
    new = canary_spec(steps, model=NEW_MODEL)
    with EndpointClient(backends, "chat"):  # traffic for the analysis to judge the step on
        backends.replace_spec("chat", new)
        wait_step(backends, 1, "Paused")
    assert "turnout.dev/color" not in backends.service_selector("chat")
    backends.annotate("chat", {"turnout.dev/abort": revision(backends, new)})
    status = backends.wait_failure("chat", timeout=30)
    assert status["lastFailureReason"] == "Aborted"
    assert backends.service_selector("chat") == {"turnout.dev/backend": "chat", "turnout.dev/color": "blue"}
    wait_seconds(lambda: backends.deployment_replicas("chat-green") == 0, timeout=30, what="the canary scaled down")
    assert backends.deployment_replicas("chat-blue") == 4


@pytest.fixture
def own_operator(kube_cluster: Any, crd_installed: None, tmp_path: Any) -> Iterator[OperatorProcess]:
    process = OperatorProcess(kube_cluster.kubeconfig, tmp_path)
    process.start()
    yield process
    process.stop()


def test_operator_killed_at_a_step_resumes_at_that_step(own_operator: OperatorProcess, backends: Backends) -> None:
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    backends.create("chat", canary_spec(steps))
    backends.wait_phase("chat", "Healthy", timeout=90)
    new = canary_spec(steps, model=NEW_MODEL)
    with EndpointClient(backends, "chat"):
        backends.replace_spec("chat", new)
        wait_step(backends, 1, "Paused")
        own_operator.kill()
        own_operator.start()
        backends.annotate("chat", {"turnout.dev/promote": f"{revision(backends, new)}/1"})
        status = wait_step(backends, 3, "Paused")
    assert (status["canary"]["weight"], status["canary"]["trafficShare"]) == (50, 50)
    assert status["previewRevision"] == revision(backends, new)


# -- 3, 4. judged on the engines' own metrics ------------------------------------------------


def annotated(spec: dict[str, Any], **annotations: str) -> dict[str, Any]:
    return {**spec, "template": {"podAnnotations": annotations}}


def test_a_canary_answering_5xx_is_aborted_and_traffic_goes_back_within_the_threshold(
    operator: OperatorProcess, backends: Backends
) -> None:
    steps = [{"setWeight": 25}, {"pause": {}}]
    backends.create("chat", canary_spec(steps))
    backends.wait_phase("chat", "Healthy", timeout=90)
    new = annotated(canary_spec(steps, model=NEW_MODEL), **{"sim.turnout.dev/error-ratio": "0.2"})
    interval, threshold = FAST_ROLLOUT["checks"]["intervalSeconds"], FAST_ROLLOUT["checks"]["failureThreshold"]
    with EndpointClient(backends, "chat") as clients:
        backends.replace_spec("chat", new)

        def failed_verdict() -> bool:
            status = backends.status("chat")
            analysis = (status.get("canary") or {}).get("analysis") or {}
            return analysis.get("outcome") == "Fail" or bool(status.get("lastFailureReason"))

        wait_for(failed_verdict, timeout=90, what="a failed verdict", interval=0.05)
        verdict_seen = time.monotonic()
        wait_seconds(
            lambda: backends.service_selector("chat").get("turnout.dev/color") == "blue",
            timeout=threshold * interval + 10,
            what="all traffic back on blue",
        )
        back = time.monotonic()
        wait_seconds(lambda: not backends.pod_ips("chat", "green") & backends.endpoint_addresses("chat"), timeout=30,
                     what="green out of the endpoints")  # fmt: skip
        sent = clients.sent
        wait_seconds(lambda: clients.sent >= sent + 20, timeout=30, what="20 requests after the abort")
    print(f"\nfailed verdict seen -> Service on stable only: {back - verdict_seen:.2f} s")
    status = backends.wait_failure("chat", timeout=10)
    assert status["lastFailureReason"] == "AnalysisFailed"
    assert "(analysis.maxErrorRatio)" in status["lastFailureMessage"]
    assert back - verdict_seen <= threshold * interval + 5
    # The client saw failures only while the canary took traffic: none once green left the endpoints.
    assert clients.failures, "the canary's 5xx reached the client"
    assert all(at <= back + 3 for at in clients.failed_at), clients.failures[-3:]


def test_a_canary_three_times_slower_is_aborted_with_both_latencies(
    operator: OperatorProcess, backends: Backends
) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    limits = {"analysis": {"maxLatencyRatio": 1.5}}
    # Checks whose smoke request waits for a slow engine: the analysis, not a timeout, must judge.
    slow_checks = {**FAST_ROLLOUT["checks"], "timeoutSeconds": 5}
    old = annotated(canary_spec(steps, canary=limits, checks=slow_checks), **{"sim.turnout.dev/latency": "0.4"})
    backends.create("chat", old)
    backends.wait_phase("chat", "Healthy", timeout=90)
    new = annotated(
        canary_spec(steps, canary=limits, checks=slow_checks, model=NEW_MODEL), **{"sim.turnout.dev/latency": "1.2"}
    )
    with EndpointClient(backends, "chat", timeout=5):
        backends.replace_spec("chat", new)
        status = backends.wait_failure("chat", timeout=120)
    assert status["lastFailureReason"] == "AnalysisFailed"
    message = status["lastFailureMessage"]
    assert "analysis.maxLatencyRatio" in message
    assert "vs stable" in message
    assert backends.service_selector("chat")["turnout.dev/color"] == "blue"
