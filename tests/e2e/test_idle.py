"""An idle operator makes no writes: counted by the API server itself."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from testground.binaries import ensure_binaries
from testground.pytest_fixtures import KubeCluster
from tests.e2e.harness import Backends, OperatorProcess, ollama_spec

pytestmark = pytest.mark.e2e

BACKENDS = 20
IDLE_SECONDS = 60
# What turnout writes; the control plane's own heartbeats (leases, nodes) are not in this list.
TURNOUT_RESOURCES = {"inferencebackends", "deployments", "services", "persistentvolumeclaims", "events"}
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def writes_to_turnout_resources(kubeconfig: str) -> float:
    """Write requests the API server has served for the kinds turnout writes, since it started."""
    kubectl = ensure_binaries().path("kubectl")
    text = subprocess.run(
        [str(kubectl), "--kubeconfig", kubeconfig, "get", "--raw", "/metrics"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    total = 0.0
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in TURNOUT_RESOURCES:
            total += float(match["value"])
    return total


def test_twenty_healthy_backends_idle_for_a_minute_cost_no_writes(
    kube_cluster: KubeCluster, operator: OperatorProcess, backends: Backends
) -> None:
    if not kube_cluster.local:
        pytest.skip("counts every writer's requests: needs the local test ground, where turnout is the only one")
    names = [f"idle-{i:02d}" for i in range(BACKENDS)]
    for name in names:
        backends.create(name, ollama_spec())
    for name in names:
        backends.wait_phase(name, "Healthy", timeout=120)
    before = writes_to_turnout_resources(kube_cluster.kubeconfig)
    time.sleep(IDLE_SECONDS)  # the measured window itself, not a wait for something to happen
    after = writes_to_turnout_resources(kube_cluster.kubeconfig)
    assert after - before == 0, f"{after - before:.0f} write requests in {IDLE_SECONDS} s of idling"
