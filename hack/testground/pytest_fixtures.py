"""pytest fixtures for e2e tests: ``kube_cluster`` is the local test ground or ``$KUBECONFIG``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testground.cluster import LocalCluster
from testground.podnet import PodNetwork
from testground.supervisor import PodSupervisor

# With TURNOUT_E2E_KUBECONFIG=1 the e2e tests run against the cluster in $KUBECONFIG.
EXTERNAL_VARIABLE = "TURNOUT_E2E_KUBECONFIG"


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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
