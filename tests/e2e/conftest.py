"""Fixtures shared by the e2e tests: an API client, the CRD installed, a namespace per test, the operator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from testground.crds import install_crd
from testground.pytest_fixtures import KubeCluster
from testground.waiting import wait_for
from tests.e2e.harness import Backends, OperatorProcess
from turnout.api.crd import build_crd

TIMEOUT = 60.0  # seconds for anything the cluster does on its own


@pytest.fixture(scope="session")
def api_client(kube_cluster: KubeCluster) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=kube_cluster.kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="session")
def crd_installed(api_client: client.ApiClient) -> None:
    """The generated CRD, created or replaced, and Established."""
    install_crd(api_client, build_crd(), timeout=TIMEOUT)


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace with its default ServiceAccount, deleted after the test."""
    core = client.CoreV1Api(api_client)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_for(lambda: core.read_namespaced_service_account("default", name), timeout=TIMEOUT,
             what=f"ServiceAccount {name}/default")  # fmt: skip
    yield name
    core.delete_namespace(name)


@pytest.fixture
def backends(api_client: client.ApiClient, namespace: str, crd_installed: None) -> Backends:
    return Backends(api_client, namespace)


@pytest.fixture(scope="module")
def operator(
    kube_cluster: KubeCluster, crd_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator running for a module's tests; its log is printed when a test of the module failed."""
    process = OperatorProcess(kube_cluster.kubeconfig, Path(tmp_path_factory.mktemp("operator")))
    process.start()
    yield process
    process.stop()
    print(f"\noperator log tail ({process.log_path}):\n{process.log_tail(60)}")


@pytest.fixture
def simulated_engines(kube_cluster: KubeCluster) -> None:
    """The test needs the local test ground: simulated engines on the pod IPs, fake GPU nodes, kwok's fault stages."""
    if not kube_cluster.local:
        pytest.skip("needs the local test ground: simulated engines on the pod IPs, fake GPU nodes, kwok fault stages")


@pytest.fixture
def own_operator(kube_cluster: KubeCluster, crd_installed: None, tmp_path: Path) -> Iterator[OperatorProcess]:
    """An operator of the test's own, which the test may kill and start again."""
    process = OperatorProcess(kube_cluster.kubeconfig, tmp_path)
    process.start()
    yield process
    process.stop()
