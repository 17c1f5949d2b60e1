"""A restarted operator with existing backends writes nothing where nothing changed: counted by the API
server itself (`apiserver_request_total`) and by the operator (`turnout_api_writes_total`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testground.pytest_fixtures import KubeCluster
from testground.waiting import wait_for
from tests.e2e.harness import Backends, OperatorProcess, ollama_spec
from tests.e2e.test_idle import writes_to_turnout_resources

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

BACKENDS = 10


def test_a_restart_with_existing_healthy_backends_writes_nothing(
    kube_cluster: KubeCluster, own_operator: OperatorProcess, backends: Backends, tmp_path: Path
) -> None:
    names = [f"kept-{i:02d}" for i in range(BACKENDS)]
    for name in names:
        backends.create(name, ollama_spec())
    for name in names:
        backends.wait_phase(name, "Healthy", timeout=120)
        wait_for(lambda name=name: "Healthy" in [r for _, r, _ in backends.events(name)], timeout=30,
                 what=f"{name}'s Healthy Event posted")  # fmt: skip
    own_operator.stop()
    # Namespaces of earlier tests being emptied mean DELETEs and PATCHes by the control plane: let them finish.
    wait_for(lambda: not [n for n in backends.core.list_namespace().items if n.status.phase == "Terminating"],
             timeout=180, what="earlier tests' namespaces to be gone")  # fmt: skip
    before = writes_to_turnout_resources(kube_cluster.kubeconfig)
    restarted = OperatorProcess(kube_cluster.kubeconfig, tmp_path / "restarted")
    restarted.log_path.parent.mkdir()
    restarted.start()
    try:
        # Every backend looked at once by the new process (each daemon reconciles at its start).
        wait_for(lambda: restarted.metric("turnout_reconciles_total") >= BACKENDS, timeout=120,
                 what=f"{BACKENDS} reconciles by the restarted operator")  # fmt: skip
        after = writes_to_turnout_resources(kube_cluster.kubeconfig)
        own = sum(restarted.metric("turnout_api_writes_total", verb=v) for v in ("apply", "scale", "patch", "create"))
    finally:
        restarted.stop()
    writes = {kind: n - before.get(kind, 0.0) for kind, n in after.items() if n != before.get(kind, 0.0)}
    assert writes == {}, f"write requests after the restart: {writes}"
    assert own == 0
