"""pytest fixtures for e2e tests: ``kube_cluster`` is the local test ground or ``$KUBECONFIG``;
``gateway_api_crds`` installs the Gateway API's HTTPRoute there; ``prometheus`` runs a Prometheus
server of the test's own beside it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import config

from testground.binaries import ensure_gateway_api_crds, ensure_node_binaries, ensure_prometheus, pinned_versions
from testground.cluster import LocalCluster
from testground.crds import install_gateway_api
from testground.podnet import PodNetwork
from testground.prometheus import PrometheusServer
from testground.realnode import RealNode, leftovers
from testground.supervisor import PodSupervisor

# With TURNOUT_E2E_KUBECONFIG=1 the e2e tests run against the cluster in $KUBECONFIG.
EXTERNAL_VARIABLE = "TURNOUT_E2E_KUBECONFIG"
# HTTPRoute's schema refers to no other Gateway API kind: a parentRef may name a Gateway that is not there.
GATEWAY_API_KINDS = ("httproutes",)


@dataclass(frozen=True)
class KubeCluster:
    """What an e2e test gets: a kubeconfig, and on the local test ground its network and simulators."""

    kubeconfig: str
    network: PodNetwork | None = None  # None on an external cluster
    supervisor: PodSupervisor | None = None
    cluster: LocalCluster | None = None  # the local control plane's processes

    @property
    def local(self) -> bool:
        """True on the local test ground (kwok stages, simulators, pinned version)."""
        return self.network is not None


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest) -> Iterator[KubeCluster]:
    """The cluster the e2e tests run against, for the whole session."""
    if os.environ.get(EXTERNAL_VARIABLE) == "1":
        kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
        yield KubeCluster(kubeconfig=kubeconfig)
        return
    from testground.ground import TestGround

    # `timeout` and CI runners stop pytest with SIGTERM: make it an interrupt, so the teardown
    # below still stops the cluster and removes the network namespace and routes.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    ground = TestGround()
    try:
        ground.start()
        print(
            f"\ntest ground up in {ground.timings['total']} s, pods in {ground.network.plan.pod_cidr}: {ground.timings}"
        )
        yield KubeCluster(ground.kubeconfig, ground.network, ground.supervisor, ground.cluster)
    finally:
        if request.session.testsfailed:
            destination = request.config.rootpath / "artifacts" / f"testground-{time.strftime('%Y%m%d-%H%M%S')}"
            ground.collect_logs(destination)
            print(f"\ntest ground logs kept in {destination}")
        ground.stop()
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def gateway_api_crds(kube_cluster: KubeCluster) -> str:
    """The Gateway API's HTTPRoute CRD (standard channel, GATEWAY_API_VERSION of hack/versions.env)
    installed and served, with no Gateway controller; returns that version. A cluster that has the
    CRD already keeps its own. The CRD files are fetched before the session (tests/preparation.py)."""
    directory = ensure_gateway_api_crds()
    api = config.new_client_from_config(config_file=kube_cluster.kubeconfig)
    try:
        install_gateway_api(api, directory, GATEWAY_API_KINDS, timeout=60.0)
    finally:
        api.close()
    return pinned_versions()["GATEWAY_API_VERSION"]


@pytest.fixture
def prometheus(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[PrometheusServer]:
    """A Prometheus server of the test's own on 127.0.0.1, scraping every second what the test lists
    with `set_targets` (pod IPs: the host routes them); stopped after the test. The binary is fetched
    before the session (tests/preparation.py)."""
    if not kube_cluster.local:
        pytest.skip("needs the local test ground: a Prometheus on this host that reaches the pod IPs")
    server = PrometheusServer(ensure_prometheus(), tmp_path / "prometheus")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def real_node(kube_cluster: KubeCluster) -> Iterator[RealNode]:
    """`real-node-0` (realnode.py) for a module's tests: containerd, kubelet and kube-proxy in the pod
    network's namespace; stopped after them (every host-wide change undone). Only pods that tolerate
    `nodes.REAL_NODE_TAINT` land there. Its binaries are built before the session (tests/preparation.py)."""
    if kube_cluster.network is None or kube_cluster.cluster is None:
        pytest.skip("needs the local test ground: the real node runs in its network namespace")
    node = RealNode(ensure_node_binaries(), kube_cluster.network.plan, kube_cluster.network.netns,
                    kube_cluster.cluster.kubeconfig, kube_cluster.cluster.logs_dir)  # fmt: skip
    node.start()
    print(f"\nreal node {node.pod_cidr} up in {node.timings['total']} s: {node.timings}")
    record = node.record
    try:
        yield node
    finally:
        node.stop()
    # Whatever the module's tests ran there, the host keeps nothing of the node.
    left = leftovers(record)
    if left:
        pytest.fail(f"the real node left on the host: {left}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
