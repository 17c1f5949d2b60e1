"""The whole test ground in one object: pod network, control plane, pod supervisor."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from testground.binaries import Binaries, ensure_binaries, ensure_node_binaries
from testground.cluster import LocalCluster
from testground.podnet import SLOTS, NetworkTaken, PodNetwork, PodNetworkPlan, reap_stale_networks
from testground.realnode import RealNode, reap_stale_real_nodes
from testground.supervisor import PodSupervisor

log = logging.getLogger(__name__)


class TestGround:
    """Starts the network namespace, then the cluster, then the supervisor; stops in reverse.

    ``kubeconfig`` is the admin kubeconfig of the running cluster. Without a ``plan`` the first
    free slot is taken (10.244.0.0/16 pods when no other test ground runs on this host). With
    ``real_node`` it also starts ``real-node-0`` (kubelet, containerd, kube-proxy; see realnode.py).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        binaries: Binaries | None = None,
        plan: PodNetworkPlan | None = None,
        workdir: Path | None = None,
        real_node: bool = False,
    ) -> None:
        self._plans = [plan] if plan else [PodNetworkPlan.for_slot(slot) for slot in range(SLOTS)]
        self._binaries = binaries
        self._workdir = workdir
        self.network = PodNetwork(self._plans[0])
        self.cluster: LocalCluster | None = None
        self.supervisor: PodSupervisor | None = None
        self._with_real_node = real_node
        self.real_node: RealNode | None = None  # with real_node=True: real-node-0 (realnode.py)
        self.timings: dict[str, float] = {}  # seconds, for benchmarks and notes

    @property
    def kubeconfig(self) -> str:
        """Path of the admin kubeconfig."""
        if self.cluster is None:
            raise RuntimeError("the test ground is not started")
        return str(self.cluster.kubeconfig)

    def start(self) -> None:
        """Bring everything up; on failure, take down what came up and re-raise."""
        began = time.monotonic()
        try:
            binaries = self._binaries or ensure_binaries()
            self.timings["binaries"] = round(time.monotonic() - began, 2)
            self.network = _start_network(self._plans)
            self.cluster = LocalCluster(binaries, self.network.plan, workdir=self._workdir)
            self.cluster.start()
            self.timings.update({f"cluster.{k}": v for k, v in self.cluster.timings.items()})
            self.supervisor = PodSupervisor(
                self.kubeconfig, self.network.netns, log_path=str(self.cluster.logs_dir / "simhost.log")
            )
            self.supervisor.start()
            if self._with_real_node:
                self.real_node = RealNode(ensure_node_binaries(), self.network.plan, self.network.netns,
                                          self.cluster.kubeconfig, self.cluster.logs_dir)  # fmt: skip
                self.real_node.start()
                self.timings.update({f"real-node.{k}": v for k, v in self.real_node.timings.items()})
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = round(time.monotonic() - began, 2)

    def stop(self) -> None:
        """Stop supervisor, cluster and network; keeps going when one of them fails."""
        for part in (self.real_node, self.supervisor, self.cluster, self.network):
            if part is None:
                continue
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s failed", type(part).__name__)

    def collect_logs(self, destination: Path) -> None:
        """Copy component and simulator logs into ``destination``."""
        if self.cluster is not None:
            self.cluster.collect_logs(destination)


def _start_network(plans: list[PodNetworkPlan]) -> PodNetwork:
    """Start the pod network of the first plan whose addresses no other test ground holds."""
    for name in reap_stale_real_nodes():
        log.warning("undid what the real node in %s left behind, its test ground died", name)
    for name in reap_stale_networks():
        log.warning("removed pod network %s, left behind by a test ground that died", name)
    for plan in plans:
        network = PodNetwork(plan)
        try:
            network.start()
            return network
        except NetworkTaken as taken:
            log.info("%s; trying the next slot", taken)
    raise NetworkTaken(f"all {len(plans)} pod network slots are taken on this host")
