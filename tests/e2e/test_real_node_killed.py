"""A test session killed while its real node runs pods leaves containers, shims, cgroups, a route and
changed sysctls behind; the next test ground's start undoes them from the record the node wrote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from kubernetes import client

from testground.nodes import REAL_NODE
from testground.pytest_fixtures import KubeCluster
from testground.realnode import Record, leftovers, reap_stale_real_nodes
from testground.waiting import wait_for
from tests.e2e.test_real_node import engine_container, pod_spec

pytestmark = [pytest.mark.e2e, pytest.mark.realnode]

TIMEOUT = 60.0
HACK = Path(__file__).resolve().parents[2] / "hack"
# The session to be killed: it starts the node, says what it changed, and waits to be killed.
_SESSION = """
import dataclasses, json, sys, time
from pathlib import Path
from testground.binaries import ensure_node_binaries
from testground.podnet import PodNetworkPlan
from testground.realnode import RealNode
given = json.loads(sys.argv[1])
node = RealNode(ensure_node_binaries(), PodNetworkPlan(**given["plan"]), given["netns"],
                Path(given["kubeconfig"]), Path(given["logs"]))
node.start()
print(json.dumps(dataclasses.asdict(node.record)), flush=True)
time.sleep(600)
"""


@pytest.fixture
def killed_session(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    if kube_cluster.network is None or kube_cluster.cluster is None:
        pytest.skip("needs the local test ground: the real node runs in its network namespace")
    given = {
        "plan": asdict(kube_cluster.network.plan),
        "netns": kube_cluster.network.netns,
        "kubeconfig": str(kube_cluster.cluster.kubeconfig),
        "logs": str(tmp_path),
    }
    session = subprocess.Popen(
        [sys.executable, "-c", _SESSION, json.dumps(given)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HACK)},
    )
    yield session
    if session.poll() is None:
        session.kill()
    session.wait()


def test_killed_session_is_undone_by_the_next_start(
    killed_session: subprocess.Popen[str], api_client: client.ApiClient
) -> None:
    assert killed_session.stdout is not None
    line = killed_session.stdout.readline()
    assert line, "the session's node did not start"
    record = Record(**json.loads(line))
    core = client.CoreV1Api(api_client)
    namespace = f"killed-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        wait_for(lambda: core.read_namespaced_service_account("default", namespace), timeout=TIMEOUT,
                 what="default ServiceAccount")  # fmt: skip
        core.create_namespaced_pod(namespace, {"metadata": {"name": "left"}, "spec": pod_spec(engine_container({}))})
        wait_for(lambda: _ready(core, namespace), timeout=TIMEOUT, what="pod Ready on the real node")

        killed_session.send_signal(signal.SIGKILL)
        killed_session.wait(timeout=TIMEOUT)
        # Its direct children die with it (parent-death signal); the container and its shim do not.
        left = leftovers(record)
        assert any(item.startswith("process ") for item in left), left
        assert any(item.startswith("sysctl ") for item in left) or not _kubelet_changes_sysctls(record), left

        assert record.netns in reap_stale_real_nodes()
        assert leftovers(record) == []
    finally:
        core.delete_namespace(namespace, grace_period_seconds=0)
        core.delete_node(REAL_NODE)


def _ready(core: client.CoreV1Api, namespace: str) -> bool:
    pod = core.read_namespaced_pod("left", namespace)
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _kubelet_changes_sysctls(record: Record) -> bool:
    # The kubelet sets kernel.panic=10, kernel.panic_on_oops=1, vm.overcommit_memory=1 when they differ.
    wanted = {"kernel.panic": "10", "kernel.panic_on_oops": "1", "vm.overcommit_memory": "1"}
    return any(record.sysctls.get(name) != value for name, value in wanted.items())
