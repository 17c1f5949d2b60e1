"""A restarted operator with existing Healthy backends reconciles each of them and changes nothing.

Counted twice, each with what it can see: every object in the test's namespace that turnout (or
Kopf on its behalf) writes keeps its resourceVersion and no Event is added, and the restarted
process's own `turnout_api_writes_total` stays at 0. The restarted process watches only the test's
namespace: in a full run, an earlier test's backend whose namespace is being deleted lives on for a
while without pods (the API server deletes them first), and what the operator does for it is not
this test's to count.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from testground.waiting import wait_for
from tests.e2e.harness import Backends, OperatorProcess, ollama_spec

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

BACKENDS = 10
# Short drain, so this namespace empties fast once the test ends (Ollama's default holds a pod 70 s).
QUICK_DRAIN = {"drain": {"preStopSeconds": 0, "gracePeriodSeconds": 2}}


def written_objects(backends: Backends) -> dict[str, str]:
    """kind/name -> resourceVersion of what turnout writes in the namespace, Events included."""
    namespace = backends.namespace
    custom = backends.custom.list_namespaced_custom_object("turnout.dev", "v1alpha1", namespace, "inferencebackends")
    versions = {f"inferencebackend/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in custom["items"]}
    for kind, listed in (
        ("deployment", backends.apps.list_namespaced_deployment(namespace)),
        ("service", backends.core.list_namespaced_service(namespace)),
        ("event", backends.core.list_namespaced_event(namespace)),
    ):
        versions.update({f"{kind}/{o.metadata.name}": o.metadata.resource_version for o in listed.items})
    return versions


def own_writes(operator: OperatorProcess) -> dict[str, float]:
    """The process's `turnout_api_writes_total` by verb, where not 0."""
    text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    samples = re.finditer(r'^turnout_api_writes_total\{verb="([^"]*)"\} (\S+)$', text, re.M)
    return {m[1]: float(m[2]) for m in samples if float(m[2])}


def test_a_restart_with_existing_healthy_backends_writes_nothing(
    own_operator: OperatorProcess, backends: Backends, tmp_path: Path
) -> None:
    names = [f"kept-{i:02d}" for i in range(BACKENDS)]
    for name in names:
        backends.create(name, ollama_spec(template=QUICK_DRAIN))
    for name in names:
        backends.wait_phase(name, "Healthy", timeout=120)
        wait_for(lambda name=name: "Healthy" in [r for _, r, _ in backends.events(name)], timeout=30,
                 what=f"{name}'s Healthy Event posted")  # fmt: skip
    own_operator.stop()
    before = written_objects(backends)

    restarted = OperatorProcess(own_operator.kubeconfig, tmp_path / "restarted", namespaces=(backends.namespace,))
    restarted.log_path.parent.mkdir()
    restarted.start()
    try:
        # Each backend's daemon reconciles once when it starts: all of them looked at by the new process.
        wait_for(lambda: restarted.metric("turnout_reconciles_total") >= BACKENDS, timeout=120,
                 what=f"{BACKENDS} reconciles by the restarted operator")  # fmt: skip
        writes = own_writes(restarted)
    finally:
        restarted.stop()
    after = written_objects(backends)

    changed = {key: (before.get(key), version) for key, version in after.items() if before.get(key) != version}
    assert changed == {}, f"objects written or added after the restart (before, after): {changed}"
    assert writes == {}, f"writes by the restarted operator, by verb: {writes}\n{restarted.log_tail()}"
    assert [backends.status(name)["phase"] for name in names] == ["Healthy"] * BACKENDS
