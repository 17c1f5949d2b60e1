"""The control plane restarted under a cutover, on the local test ground: kube-apiserver during
Verifying and during Baking, etcd once. Each cutover ends Healthy on the new color, and the Service
moved exactly once (watched throughout, across the restarts)."""

from __future__ import annotations

from typing import Any

import pytest

from testground.pytest_fixtures import KubeCluster
from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, ServiceMoves, vllm_spec

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

NEW_MODEL = "meta-llama/Llama-3.2-3B-Instruct"
# Long enough phases to restart a component inside them: 8 check rounds a second apart, a 20 s bake.
SLOW: dict[str, Any] = {
    **FAST_ROLLOUT,
    "bakeSeconds": 20,
    "checks": {**FAST_ROLLOUT["checks"], "successThreshold": 8},
}


@pytest.mark.parametrize(
    ("component", "phase"),
    [("kube-apiserver", "Verifying"), ("kube-apiserver", "Baking"), ("etcd", "Verifying")],
)
def test_a_cutover_survives_a_control_plane_restart(
    kube_cluster: KubeCluster, operator: OperatorProcess, backends: Backends, component: str, phase: str
) -> None:
    assert kube_cluster.cluster is not None
    backends.create("chat", vllm_spec(rollout=SLOW))
    backends.wait_phase("chat", "Healthy", timeout=90)
    with ServiceMoves.of(backends, "chat") as moves:
        backends.replace_spec("chat", vllm_spec(model=NEW_MODEL, rollout=SLOW))
        backends.wait_phase("chat", phase, timeout=60)
        down = kube_cluster.cluster.restart(component)
        status = backends.wait_status("chat", timeout=120, activeColor="green", phase="Healthy")
    assert down > 0
    assert status["activeRevision"] == status["servedModels"][0]["revision"] or status["activeModel"] == NEW_MODEL
    assert status["activeModel"] == NEW_MODEL
    assert moves.colors == ["green"], moves.colors
    assert backends.service_selector("chat")["turnout.dev/color"] == "green"
