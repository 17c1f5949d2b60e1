"""`kubectl turnout` on a real control plane: promote releases a Paused revision; `status --watch` exits
0 on Healthy, 3 on Paused."""

from __future__ import annotations

import pytest

from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, vllm_spec
from turnout.plugin import command

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]


def test_promote_releases_a_paused_revision_and_watch_exits_0_on_healthy(
    operator: OperatorProcess, backends: Backends, kube_cluster: object, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = str(kube_cluster.kubeconfig)  # type: ignore[attr-defined]
    plugin = ["--kubeconfig", kubeconfig]
    ns = ["-n", backends.namespace]
    rollout = {**FAST_ROLLOUT, "autoPromote": False}
    backends.create("chat", vllm_spec(rollout=rollout))
    assert command.main([*plugin, "status", "chat", *ns, "--watch", "--timeout", "60", "--interval", "0.5"]) == 0
    assert command.main([*plugin, "promote", "chat", *ns]) == 1
    assert "nothing waits for a promotion" in capsys.readouterr().err

    backends.replace_spec("chat", vllm_spec(model="meta-llama/Llama-3.2-3B-Instruct", rollout=rollout))
    assert command.main([*plugin, "status", "chat", *ns, "--watch", "--timeout", "60", "--interval", "0.5"]) == 3
    revision = backends.status("chat")["previewRevision"]
    capsys.readouterr()
    assert command.main([*plugin, "promote", "chat", *ns]) == 0
    assert f"turnout.dev/promote={revision}" in capsys.readouterr().out
    # The annotation does not bump the generation: wait for the operator to act before watching again.
    backends.wait_status("chat", timeout=30, activeColor="green")
    assert command.main([*plugin, "status", "chat", *ns, "--watch", "--timeout", "90", "--interval", "0.5"]) == 0
    assert backends.service_selector("chat")["turnout.dev/color"] == "green"
    assert command.main([*plugin, "status", "chat", *ns]) == 0
    assert "Service:    selects green" in capsys.readouterr().out
