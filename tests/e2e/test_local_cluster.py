"""The test ground behaves like a GPU cluster: real scheduler and controllers, kwok as kubelet,
pod IPs that answer from the simulators, and pods that fail the way real ones do."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

import httpx
import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from testground.binaries import ensure_binaries, pinned_versions
from testground.cluster import LocalCluster
from testground.faults import FAULT_ANNOTATION, Fault
from testground.nodes import CPU_NODES, GPU_NODES, GPU_RESOURCE, GPUS_PER_NODE
from testground.pytest_fixtures import KubeCluster
from testground.waiting import wait_for

pytestmark = pytest.mark.e2e

VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
TIMEOUT = 60.0  # seconds for anything the cluster does on its own


# api_client and namespace come from tests/e2e/conftest.py.


def deployment(name: str, replicas: int, pod_spec: dict[str, Any]) -> dict[str, Any]:
    """A Deployment of `replicas` pods labelled app=<name>."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def vllm_deployment(name: str, gpus: int, replicas: int = 1) -> dict[str, Any]:
    container = {
        "name": "vllm",
        "image": VLLM_IMAGE,
        "args": ["--served-model-name", "x", "--port", "8000"],
        "ports": [{"containerPort": 8000, "name": "http"}],
        "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
    }
    return deployment(name, replicas, {"tolerations": [GPU_TOLERATION], "containers": [container]})


def pause_deployment(name: str, replicas: int) -> dict[str, Any]:
    """Pods that any cluster can run (the pause image), for tests that need no engine."""
    container = {"name": "pause", "image": PAUSE_IMAGE, "ports": [{"containerPort": 8000, "name": "http"}]}
    return deployment(name, replicas, {"containers": [container]})


def pods_of(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"app={app}").items


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_apiserver_reports_the_pinned_kubernetes_version(
    kube_cluster: KubeCluster, api_client: client.ApiClient
) -> None:
    if not kube_cluster.local:
        pytest.skip("an external cluster runs its own version")
    version = client.VersionApi(api_client).get_code()
    assert version.git_version == pinned_versions()["KUBERNETES_VERSION"]


def test_gpu_deployment_lands_on_a_gpu_node_and_its_pod_ip_serves_the_model(
    kube_cluster: KubeCluster, api_client: client.ApiClient, namespace: str
) -> None:
    if not kube_cluster.local:
        pytest.skip("needs the test ground's simulators")
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, vllm_deployment("chat", gpus=2, replicas=2))

    def ready_pods() -> list[client.V1Pod]:
        pods = pods_of(core, namespace, "chat")
        return pods if len(pods) == 2 and all(is_ready(p) and p.status.pod_ip for p in pods) else []

    pods = wait_for(ready_pods, timeout=TIMEOUT, what="2 Ready chat pods")
    pod_cidr = ipaddress.ip_network(kube_cluster.network.plan.pod_cidr)
    for pod in pods:
        assert pod.spec.node_name in GPU_NODES
        assert ipaddress.ip_address(pod.status.pod_ip) in pod_cidr

    with httpx.Client(trust_env=False, timeout=2.0) as http:
        for pod in pods:
            url = f"http://{pod.status.pod_ip}:8000/v1/models"
            response = wait_for(lambda url=url: http.get(url), timeout=TIMEOUT, what=f"simulator at {url}")
            assert response.status_code == 200
            assert [model["id"] for model in response.json()["data"]] == ["x"]

    # The API server, on the host, dials pod IPs too (its proxy refuses loopback addresses).
    name = pods[0].metadata.name
    proxied = core.connect_get_namespaced_pod_proxy_with_path(
        f"{name}:8000", namespace, "v1/models", _preload_content=False
    )
    assert [model["id"] for model in json.loads(proxied.data)["data"]] == ["x"]


def test_more_gpus_than_any_node_has_stays_pending_as_unschedulable(
    api_client: client.ApiClient, namespace: str
) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, vllm_deployment("huge", gpus=GPUS_PER_NODE + 1))

    def unschedulable() -> client.V1PodCondition | None:
        for pod in pods_of(core, namespace, "huge"):
            for condition in pod.status.conditions or []:
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    return condition
        return None

    condition = wait_for(unschedulable, timeout=TIMEOUT, what="PodScheduled=False Unschedulable")
    assert condition.status == "False"
    assert f"Insufficient {GPU_RESOURCE}" in condition.message
    [pod] = pods_of(core, namespace, "huge")
    assert pod.status.phase == "Pending"
    assert not pod.spec.node_name


def test_service_gets_an_endpointslice_with_pod_ips_and_deleting_the_deployment_collects_its_pods(
    api_client: client.ApiClient, namespace: str
) -> None:
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    discovery = client.DiscoveryV1Api(api_client)
    apps.create_namespaced_deployment(namespace, pause_deployment("web", replicas=2))
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 8000, "targetPort": "http"}]},
    })  # fmt: skip

    def ready_ips() -> set[str]:
        pods = pods_of(core, namespace, "web")
        return {p.status.pod_ip for p in pods} if len(pods) == 2 and all(map(is_ready, pods)) else set()

    pod_ips = wait_for(ready_ips, timeout=TIMEOUT, what="2 Ready web pods")

    def sliced_ips() -> bool:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web"
        ).items
        ready = {address for s in slices for e in s.endpoints or [] if e.conditions.ready
                 for address in e.addresses}  # fmt: skip
        return ready == pod_ips

    wait_for(sliced_ips, timeout=TIMEOUT, what=f"EndpointSlice of Service web with {sorted(pod_ips)}")

    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")

    def collected() -> bool:
        replica_sets = apps.list_namespaced_replica_set(namespace, label_selector="app=web").items
        return not replica_sets and not pods_of(core, namespace, "web")

    wait_for(collected, timeout=TIMEOUT, what="ReplicaSet and pods of web garbage-collected")


def faulty_pod(name: str, fault: Fault) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {FAULT_ANNOTATION: fault.value}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": CPU_NODES[0]},
            "containers": [{"name": "vllm", "image": VLLM_IMAGE, "args": ["--served-model-name", "x"]}],
        },
    }


def watch_container_states(core: client.CoreV1Api, namespace: str, name: str,
                           until: Any, timeout: float = TIMEOUT) -> list[client.V1Pod]:  # fmt: skip
    """Record every version of the pod from its creation until ``until(pod)`` holds."""
    seen: list[client.V1Pod] = []
    stream = watch.Watch()
    for event in stream.stream(core.list_namespaced_pod, namespace, field_selector=f"metadata.name={name}",
                               timeout_seconds=int(timeout)):  # fmt: skip
        seen.append(event["object"])
        if until(event["object"]):
            stream.stop()
            return seen
    raise AssertionError(f"pod {name} never reached the expected state; saw {len(seen)} versions")


def wait_for_event(core: client.CoreV1Api, namespace: str, pod: str, reason: str) -> None:
    """Wait for a Warning event about ``pod`` with ``reason``, as a kubelet would record."""

    def recorded() -> bool:
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}").items
        return any(e.reason == reason and e.type == "Warning" for e in events)

    wait_for(recorded, timeout=TIMEOUT, what=f"Warning event {reason} for pod {pod}")


def container(pod: client.V1Pod) -> client.V1ContainerStatus | None:
    statuses = pod.status.container_statuses or []
    return statuses[0] if statuses else None


def waiting_reason(pod: client.V1Pod) -> str | None:
    status = container(pod)
    return status.state.waiting.reason if status and status.state.waiting else None


def test_image_pull_back_off_fault_keeps_the_pod_pending(
    kube_cluster: KubeCluster, api_client: client.ApiClient, namespace: str
) -> None:
    if not kube_cluster.local:
        pytest.skip("faults are played by the test ground's kwok stages")
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, faulty_pod("pull", Fault.IMAGE_PULL_BACK_OFF))
    [*_, pod] = watch_container_states(core, namespace, "pull",
                                       lambda p: waiting_reason(p) == "ImagePullBackOff")  # fmt: skip
    assert pod.status.phase == "Pending"
    assert not is_ready(pod)
    assert VLLM_IMAGE in container(pod).state.waiting.message
    wait_for_event(core, namespace, "pull", "Failed")


@pytest.mark.parametrize(("fault", "reason", "exit_code"), [
    (Fault.CRASH_LOOP_BACK_OFF, "Error", 1),
    (Fault.OOM_KILLED, "OOMKilled", 137),
])  # fmt: skip
def test_crash_faults_exit_then_loop_in_crash_loop_back_off_with_rising_restarts(
    kube_cluster: KubeCluster, api_client: client.ApiClient, namespace: str,
    fault: Fault, reason: str, exit_code: int,
) -> None:  # fmt: skip
    if not kube_cluster.local:
        pytest.skip("faults are played by the test ground's kwok stages")
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, faulty_pod("crash", fault))

    def looping(pod: client.V1Pod) -> bool:
        status = container(pod)
        return waiting_reason(pod) == "CrashLoopBackOff" and status is not None and status.restart_count >= 2

    history = watch_container_states(core, namespace, "crash", looping)
    first_exit = next(s.state.terminated for p in history if (s := container(p)) and s.state.terminated)
    assert (first_exit.reason, first_exit.exit_code) == (reason, exit_code)
    pod = history[-1]
    assert pod.status.phase == "Running"
    assert not is_ready(pod)
    last = container(pod).last_state.terminated
    assert (last.reason, last.exit_code) == (reason, exit_code)
    wait_for_event(core, namespace, "crash", "BackOff")


def test_never_ready_fault_runs_with_an_ip_but_is_not_ready(
    kube_cluster: KubeCluster, api_client: client.ApiClient, namespace: str
) -> None:
    if not kube_cluster.local:
        pytest.skip("faults are played by the test ground's kwok stages")
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, faulty_pod("stuck", Fault.NEVER_READY))
    [*_, pod] = watch_container_states(core, namespace, "stuck", lambda p: p.status.phase == "Running")
    status = container(pod)
    assert pod.status.pod_ip
    assert status.state.running is not None
    assert status.ready is False
    assert not is_ready(pod)


def test_pod_network_routes_stay_on_this_host(kube_cluster: KubeCluster) -> None:
    if not kube_cluster.local:
        pytest.skip("the pod network belongs to the test ground")
    network = kube_cluster.network
    plan = network.plan
    pod_ip = str(next(ipaddress.ip_network(plan.pod_cidr).hosts()))
    for address in (pod_ip, plan.node_ip):
        route = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True, check=True)
        assert f"dev {network.host_veth}" in route.stdout
    guarded = subprocess.run(["ip", "route", "get", plan.kubernetes_service_ip], capture_output=True, text=True)
    assert guarded.returncode != 0
    assert "No route to host" in guarded.stderr


def test_control_plane_listens_on_loopback_and_talks_only_to_loopback_or_the_pod_network(
    kube_cluster: KubeCluster,
) -> None:
    if not kube_cluster.local:
        pytest.skip("about the local test ground")
    pids = {f"pid={pid}," for pid in kube_cluster.cluster.pids}
    ours = [ipaddress.ip_network(prefix) for prefix in kube_cluster.network.plan.owned_prefixes()]
    sockets = subprocess.run(["ss", "-tuanpH"], capture_output=True, text=True, check=True).stdout
    seen = 0
    for line in sockets.splitlines():
        if not any(pid in line for pid in pids):
            continue
        seen += 1
        _, state, _, _, local, peer, *_ = line.split()
        if state in ("LISTEN", "UNCONN"):
            assert socket_ip(local).is_loopback, line
        else:
            remote = socket_ip(peer)
            assert remote.is_loopback or any(remote in prefix for prefix in ours), line
    assert seen, "found none of the control plane's sockets"


def socket_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IP of an ``ss`` address like ``127.0.0.1:80``, ``[::ffff:127.0.0.1]:80`` or ``*:80``."""
    host = address.rsplit(":", 1)[0].strip("[]").split("%")[0]
    ip = ipaddress.ip_address("0.0.0.0" if host == "*" else host)
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


def test_apiserver_refuses_loopback_endpoints_which_is_why_pods_live_in_a_netns(
    api_client: client.ApiClient, namespace: str
) -> None:
    discovery = client.DiscoveryV1Api(api_client)
    body = {"metadata": {"name": "loopback"}, "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"]}], "ports": []}  # fmt: skip
    with pytest.raises(ApiException) as refused:
        discovery.create_namespaced_endpoint_slice(namespace, body)
    assert refused.value.status == 422


def test_a_cluster_stops_without_leaving_processes_or_files(kube_cluster: KubeCluster) -> None:
    if not kube_cluster.local:
        pytest.skip("about the local test ground")
    cluster = LocalCluster(ensure_binaries(), kube_cluster.network.plan)
    cluster.start()
    pids, workdir = cluster.pids, cluster.workdir
    assert len(pids) == 5  # etcd, apiserver, controller-manager, scheduler, kwok
    cluster.stop()
    alive = subprocess.run(["ps", "-o", "pid=", "-p", ",".join(map(str, pids))], capture_output=True, text=True)
    assert alive.stdout.strip() == ""
    assert not workdir.exists()
