"""An idle operator makes no writes: counted by the API server itself."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from testground.binaries import ensure_binaries
from testground.pytest_fixtures import KubeCluster
from testground.waiting import wait_for
from tests.e2e.harness import Backends, OperatorProcess, ollama_spec

pytestmark = pytest.mark.e2e

BACKENDS = 20
IDLE_SECONDS = 60
# What turnout writes; the control plane's own heartbeats (leases, nodes) are not in this list.
TURNOUT_RESOURCES = {"inferencebackends", "deployments", "services", "persistentvolumeclaims", "events"}
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def writes_to_turnout_resources(kubeconfig: str) -> dict[str, float]:
    """Write requests the API server has served for the kinds turnout writes, since it started, by kind."""
    kubectl = ensure_binaries().path("kubectl")
    text = subprocess.run(
        [str(kubectl), "--kubeconfig", kubeconfig, "get", "--raw", "/metrics"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    counts: dict[str, float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in TURNOUT_RESOURCES:
            kind = f"{labels['verb']} {labels['resource']}/{labels.get('subresource', '')}".rstrip("/")
            counts[kind] = counts.get(kind, 0.0) + float(match["value"])
    return counts


def test_twenty_healthy_backends_idle_for_a_minute_cost_no_writes(
    kube_cluster: KubeCluster, operator: OperatorProcess, backends: Backends
) -> None:
    if not kube_cluster.local:
        pytest.skip("counts every writer's requests: needs the local test ground, where turnout is the only one")
    # Namespaces of earlier tests being emptied mean DELETEs and PATCHes by the control plane: let them finish.
    wait_for(
        lambda: not [n for n in backends.core.list_namespace().items if n.status.phase == "Terminating"],
        timeout=180,
        what="earlier tests' namespaces to be gone",
    )
    names = [f"idle-{i:02d}" for i in range(BACKENDS)]
    for name in names:
        backends.create(name, ollama_spec())
    for name in names:
        backends.wait_phase(name, "Healthy", timeout=120)
    # The Events of the last step are posted after its status (Kopf posts them from a queue): the
    # window starts once each backend's Healthy Event is in.
    for name in names:
        wait_for(
            lambda name=name: "Healthy" in [reason for _, reason, _ in backends.events(name)],
            timeout=30,
            what=f"{name}'s Healthy Event posted",
        )
    before = writes_to_turnout_resources(kube_cluster.kubeconfig)
    time.sleep(IDLE_SECONDS)  # the measured window itself, not a wait for something to happen
    after = writes_to_turnout_resources(kube_cluster.kubeconfig)
    writes = {kind: n - before.get(kind, 0.0) for kind, n in after.items() if n != before.get(kind, 0.0)}
    assert writes == {}, f"write requests in {IDLE_SECONDS} s of idling: {writes}"
