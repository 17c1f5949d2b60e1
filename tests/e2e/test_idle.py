"""An idle operator makes no writes, and no reads beyond its watches: counted by the API server itself
(its request counters for writes, its audit log for reads, which tells the control plane's own apart)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from testground.binaries import ensure_binaries
from testground.pytest_fixtures import KubeCluster
from testground.waiting import wait_for
from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, ollama_spec, vllm_spec
from turnout.handlers import RESYNC_SPREAD
from turnout.rollout.plan import IDLE_RESYNC_SECONDS

pytestmark = pytest.mark.e2e

BACKENDS = 20
CLAIMED = "idle-claim"
"""A vLLM backend whose model claim turnout creates (storage.create): the claim is read from a watch too."""
ROUTED = "idle-routed"
"""A canary routed by an HTTPRoute (the ground serves the Gateway API's CRDs): the route is read from a watch too."""
ROUTE = "idle-route"
# Longer than the longest (jittered) idle resync: every backend is reconciled at least once in the window.
IDLE_SECONDS = IDLE_RESYNC_SECONDS * (1 + RESYNC_SPREAD) + 10
# What turnout writes; the control plane's own heartbeats (leases, nodes) are not in this list.
TURNOUT_RESOURCES = {"inferencebackends", "deployments", "services", "persistentvolumeclaims", "httproutes", "events"}
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
# The control plane's own clients (the garbage collector GETs the owners of what turnout creates; the
# API server's own Service IP repair loop lists Services).
CONTROL_PLANE_USER_AGENTS = ("kube-controller-manager/", "kube-scheduler/", "kube-apiserver/", "kwok")
SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def requests_served(kubeconfig: str, verbs: set[str], resources: set[str]) -> dict[str, float]:
    """Requests with one of `verbs` on one of `resources` the API server has served since it started, by kind."""
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
        if labels.get("verb") in verbs and labels.get("resource") in resources:
            kind = f"{labels['verb']} {labels['resource']}/{labels.get('subresource', '')}".rstrip("/")
            counts[kind] = counts.get(kind, 0.0) + float(match["value"])
    return counts


@pytest.fixture
def claim_volume(backends: Backends) -> Iterator[None]:
    """A PersistentVolume for the claimed backend's model claim to bind to (the test ground has no provisioner)."""
    with backends.volume_for(f"{CLAIMED}-models"):
        yield


def create_routed_canary(backends: Backends) -> None:
    """A route with refs to both color Services, then a canary that names it."""
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": ROUTE},
        "spec": {
            "parentRefs": [{"name": "inference-gateway"}],  # no such Gateway, and none is needed
            "rules": [
                {
                    "backendRefs": [
                        {"name": f"{ROUTED}-blue", "port": 8000},
                        {"name": f"{ROUTED}-green", "port": 8000, "weight": 0},
                    ]
                }
            ],
        },
    }
    backends.custom.create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", backends.namespace, "httproutes", route
    )
    rollout = {
        **FAST_ROLLOUT,
        "strategy": "Canary",
        "canary": {"steps": [{"setWeight": 50}], "maxSurge": 1, "traffic": {"httpRoute": {"name": ROUTE}}},
    }
    backends.create(ROUTED, vllm_spec(rollout=rollout))


def test_twenty_healthy_backends_idle_past_their_resync_cost_no_writes_and_no_reads(
    kube_cluster: KubeCluster,
    operator: OperatorProcess,
    backends: Backends,
    claim_volume: None,
    gateway_api_crds: str,
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
    claimed = vllm_spec()
    claimed["model"]["storage"] = {"create": True, "size": "10Gi", "accessModes": ["ReadWriteOnce"]}
    backends.create(CLAIMED, claimed)
    names.append(CLAIMED)
    create_routed_canary(backends)
    names.append(ROUTED)
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
    assert kube_cluster.cluster is not None
    audit_log = kube_cluster.cluster.audit_log
    kubeconfig = kube_cluster.kubeconfig
    writes_before = requests_served(kubeconfig, WRITE_VERBS, TURNOUT_RESOURCES)
    audited = audit_log.stat().st_size
    reconciles_before = operator.metric("turnout_reconciles_total")
    time.sleep(IDLE_SECONDS)  # the measured window itself, not a wait for something to happen
    writes = since(writes_before, requests_served(kubeconfig, WRITE_VERBS, TURNOUT_RESOURCES))
    reads = reads_audited(audit_log, audited)
    reconciles = operator.metric("turnout_reconciles_total") - reconciles_before
    assert reconciles >= len(names), f"{reconciles} reconciles in {IDLE_SECONDS:.0f} s: not every backend resynced"
    assert writes == {}, f"write requests in {IDLE_SECONDS:.0f} s of idling: {writes}"
    # Everyone but the control plane: turnout (User-Agent turnout), Kopf, and this test, which is idle too.
    others = {read: n for read, n in reads.items() if not read[0].startswith(CONTROL_PLANE_USER_AGENTS)}
    assert others == {}, f"reads (not watches) in {IDLE_SECONDS:.0f} s of idling: {reads}"


def reads_audited(audit_log: Path, offset: int) -> Counter[tuple[str, str, str]]:
    """The audited reads (get, list of the kinds turnout reads) after `offset` bytes of the audit log,
    by (user agent, verb, resource)."""
    with audit_log.open() as log:
        log.seek(offset)
        events = [json.loads(line) for line in log if line.strip()]
    return Counter(
        (e.get("userAgent", ""), e["verb"], (e.get("objectRef") or {}).get("resource", ""))
        for e in events
        if e.get("stage") == "ResponseComplete"
    )


def since(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {kind: n - before.get(kind, 0.0) for kind, n in after.items() if n != before.get(kind, 0.0)}
