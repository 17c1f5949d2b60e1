"""Pods in real containers on the test ground's real node (kubelet, containerd, kube-proxy): readiness
comes from the real probe, a scale-down drains through preStop and the grace period, and a stopped
node leaves nothing behind on the host. The engines are the simulators, run as the containers' process."""

from __future__ import annotations

import datetime
import http.client
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from testground.nodes import REAL_NODE
from testground.realnode import RealNode, host_state, leftovers
from testground.switching import blue_green_service, engine_container, is_ready, pod_spec, ready_pod, switch_selector
from testground.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

TIMEOUT = 60.0


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def node_namespace(core: client.CoreV1Api, real_node: RealNode) -> Iterator[str]:
    """A namespace for pods on the real node; deleted after the test, and its pods gone from the node."""
    name = f"real-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.read_namespaced_service_account("default", name), timeout=TIMEOUT,
             what=f"ServiceAccount {name}/default")  # fmt: skip
    yield name
    core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
    wait_for(lambda: not core.list_namespaced_pod(name).items, timeout=TIMEOUT, what=f"pods of {name} gone")
    core.delete_namespace(name)


def test_engine_pod_is_ready_only_once_its_probe_passes(core: client.CoreV1Api, node_namespace: str) -> None:
    loads = 4  # seconds the engine takes before it listens
    pod = {"metadata": {"name": "loading"},
           "spec": pod_spec(engine_container({"SIM_BEHAVIOUR": f"slow-start:{loads}"}))}  # fmt: skip
    created = time.monotonic()
    core.create_namespaced_pod(node_namespace, pod)
    running = wait_for(lambda: _running(core, node_namespace, "loading"), timeout=TIMEOUT, what="container running")
    ip = running.status.pod_ip
    # The container runs but its engine refuses connections: the kubelet's probe fails, the pod is not Ready.
    assert not is_ready(running), "Ready before the engine listens"
    with pytest.raises(ConnectionRefusedError):
        _get(ip, "/health")
    ready = wait_for(lambda: ready_pod(core, node_namespace, "loading"), timeout=TIMEOUT, what="pod Ready")
    print(f"\nreal pod Ready {time.monotonic() - created:.2f} s after create (engine loads {loads} s)")
    started = running.status.container_statuses[0].state.running.started_at
    became_ready = next(c for c in ready.status.conditions if c.type == "Ready").last_transition_time
    # Condition times have whole seconds: allow one.
    assert became_ready - started >= datetime.timedelta(seconds=loads - 1)
    assert _get(ip, "/health") == 200
    assert ready.spec.node_name == REAL_NODE


def test_scale_down_drains_an_open_stream(api_client: client.ApiClient, node_namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    labels = {"app": "drain"}
    # 12 tokens at 3 a second: a 4 s stream; preStop 2 s, then SIGTERM and vLLM's own drain (10 s).
    container = engine_container({"SIM_TOKENS_PER_SECOND": "3"}, shutdown_timeout=10, pre_stop=2)
    deployment = {
        "metadata": {"name": "drain"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec(container, grace=20)}},
    }  # fmt: skip
    apps.create_namespaced_deployment(node_namespace, deployment)
    pod = wait_for(lambda: ready_pod(core, node_namespace, label="app=drain"), timeout=TIMEOUT, what="pod Ready")
    stream = _Stream(pod.status.pod_ip, max_tokens=12)
    stream.start()
    wait_for(lambda: stream.chunks >= 1, timeout=TIMEOUT, what="the first token")
    apps.patch_namespaced_deployment_scale("drain", node_namespace, {"spec": {"replicas": 0}})
    wait_for(lambda: _deleting(core, node_namespace, pod.metadata.name), timeout=TIMEOUT, what="pod terminating")
    stream.deleted.set()
    stream.join(timeout=TIMEOUT)
    assert stream.error is None, f"the stream broke during the scale-down: {stream.error!r}"
    assert stream.done, f"no [DONE] after {stream.chunks} chunks"
    assert stream.chunks >= 12
    assert stream.ended_after_delete, "the stream ended before the pod was deleted: no drain was tested"
    wait_for(lambda: not core.list_namespaced_pod(node_namespace, label_selector="app=drain").items,
             timeout=TIMEOUT, what="pod gone")  # fmt: skip


def test_service_switch_as_a_client_of_its_cluster_ip_sees_it(
    core: client.CoreV1Api, node_namespace: str, real_node: RealNode
) -> None:
    cluster_ip = blue_green_service(core, node_namespace, real_node.netns, TIMEOUT)
    switch = switch_selector(core, node_namespace, "chat", real_node.netns, cluster_ip, "green", TIMEOUT)
    assert switch.failures == []
    print(
        f"\nClusterIP switch: selector patch to first green answer {switch.first_new:.3f} s, "
        f"to last blue answer {switch.last_old:.3f} s ({switch.requests} requests, 0 failed)"
    )


def test_stopped_node_leaves_nothing_on_the_host(real_node: RealNode) -> None:
    # The last test of the module: it stops the node itself (the fixture's stop is then a no-op).
    memory = real_node.resident_mib()
    print(f"\nreal node processes' resident memory: {memory:.0f} MiB; started in {real_node.timings}")
    record = real_node.record
    before = real_node.host_before
    real_node.stop()
    assert leftovers(record) == []
    after = host_state(real_node.binaries.iptables)
    for key in ("sysctls", "iptables", "cgroups", "records", "paths"):
        assert after[key] == before[key], key
    # Other test grounds may come and go meanwhile: only this node's links, routes and mounts must be gone.
    assert [m for m in after["mounts"] if m not in before["mounts"]] == []
    assert [r for r in after["routes"] if real_node.pod_cidr in r] == []


class _Stream(threading.Thread):
    """A streamed chat completion read chunk by chunk from the pod."""

    def __init__(self, ip: str, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.ip, self.max_tokens = ip, max_tokens
        self.chunks = 0
        self.done = False
        self.error: BaseException | None = None
        self.deleted = threading.Event()
        self.ended_after_delete = False

    def run(self) -> None:
        try:
            connection = http.client.HTTPConnection(self.ip, 8000, timeout=30)
            body = {"model": "chat", "stream": True, "max_tokens": self.max_tokens, "ignore_eos": True,
                    "messages": [{"role": "user", "content": "hello"}]}  # fmt: skip
            connection.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200, response.status
            for raw in response:
                line = raw.decode().strip()
                if line == "data: [DONE]":
                    self.done = True
                elif line.startswith("data: "):
                    self.chunks += 1
            self.ended_after_delete = self.deleted.is_set()
        except Exception as error:  # reported by the test
            self.error = error


def _running(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    statuses = pod.status.container_statuses or []
    return pod if statuses and statuses[0].state.running and pod.status.pod_ip else None


def _deleting(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    return core.read_namespaced_pod(name, namespace).metadata.deletion_timestamp is not None


def _get(ip: str, path: str) -> int:
    connection = http.client.HTTPConnection(ip, 8000, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()
