"""Two operator replicas on one Lease, on a real control plane: one acts, the other stands by and
takes over when the leader dies; the standby never writes. Each replica counts its own writes
(`turnout_api_writes_total`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testground.pytest_fixtures import KubeCluster
from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, ServiceMoves, vllm_spec, wait_seconds

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines", "crd_installed")]

NEW_MODEL = "meta-llama/Llama-3.2-3B-Instruct"


def writes(replica: OperatorProcess) -> float:
    return sum(replica.metric("turnout_api_writes_total", verb=verb) for verb in
               ("apply", "scale", "create", "replace", "delete", "patch"))  # fmt: skip


@pytest.fixture
def replicas(kube_cluster: KubeCluster, namespace: str, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """Two replicas of one install, standing for the Lease `turnout` in the test's namespace."""
    pair = [OperatorProcess(kube_cluster.kubeconfig, tmp_path / name, lease=(namespace, "turnout")) for name in "ab"]
    for replica in pair:
        replica.log_path.parent.mkdir()
    yield pair
    for replica in pair:
        replica.stop()
        print(f"\n{replica.log_path}:\n{replica.log_tail(30)}")


def leader_of(pair: list[OperatorProcess]) -> tuple[OperatorProcess, OperatorProcess]:
    """(leader, standby) as each replica's `turnout_leading` says, once exactly one leads."""
    wait_seconds(lambda: sorted(r.metric("turnout_leading") for r in pair) == [0.0, 1.0], timeout=60,
                 what="exactly one replica leading")  # fmt: skip
    return (pair[0], pair[1]) if pair[0].metric("turnout_leading") else (pair[1], pair[0])


def test_two_replicas_started_at_once_only_one_ever_writes(replicas: list[OperatorProcess], backends: Backends) -> None:
    for replica in replicas:
        replica.start()
    leader, standby = leader_of(replicas)
    backends.create("chat", vllm_spec(rollout=FAST_ROLLOUT))
    backends.wait_phase("chat", "Healthy", timeout=60)
    backends.replace_spec("chat", vllm_spec(model=NEW_MODEL, rollout=FAST_ROLLOUT))
    backends.wait_status("chat", timeout=90, activeColor="green", phase="Healthy")
    assert writes(leader) > 0
    assert writes(standby) == 0
    assert standby.metric("turnout_reconciles_total") == 0


def test_the_standby_finishes_a_cutover_when_the_leader_dies(
    replicas: list[OperatorProcess], backends: Backends
) -> None:
    replicas[0].start()
    wait_seconds(lambda: replicas[0].metric("turnout_leading") == 1, timeout=60, what="the first replica leading")
    replicas[1].start()
    leader, standby = replicas
    rollout = {**FAST_ROLLOUT, "bakeSeconds": 20}
    backends.create("chat", vllm_spec(rollout=rollout))
    backends.wait_phase("chat", "Healthy", timeout=60)
    with ServiceMoves.of(backends, "chat") as moves:
        backends.replace_spec("chat", vllm_spec(model=NEW_MODEL, rollout=rollout))
        backends.wait_phase("chat", "Baking", timeout=60)
        leader.kill()  # mid-bake, as when its node dies: no release of the Lease
        killed = time.monotonic()
        wait_seconds(lambda: standby.metric("turnout_leading") == 1, timeout=40, what="the standby taking over")
        took_over = time.monotonic() - killed
        backends.wait_status("chat", timeout=60, activeColor="green", phase="Healthy")
    # The Lease lasts 15 s; a standby tries every 2 s.
    assert took_over <= 15 + 2 + 5, took_over
    assert moves.colors == ["green"], moves.colors  # the switch, once; nothing moved it again
    assert writes(standby) > 0
