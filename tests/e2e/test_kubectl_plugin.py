"""`kubectl turnout` on a real control plane: each verb against real backends, and the plugin found
by real `kubectl` on PATH from a freshly installed wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from testground.pytest_fixtures import KubeCluster
from tests.e2e.harness import FAST_ROLLOUT, Backends, OperatorProcess, vllm_spec
from turnout.plugin import command

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

REPO = Path(__file__).resolve().parents[2]
NEW_MODEL = "meta-llama/Llama-3.2-3B-Instruct"


class Plugin:
    """`kubectl turnout VERB NAME -n NAMESPACE` against the test's cluster: exit code and what it printed."""

    def __init__(self, kubeconfig: str, namespace: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.kubeconfig, self.namespace, self.capsys = kubeconfig, namespace, capsys

    def __call__(self, verb: str, *arguments: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = command.main(["--kubeconfig", self.kubeconfig, verb, *arguments, "-n", self.namespace])
        out, err = self.capsys.readouterr()
        return code, out, err

    def watch(self, name: str, timeout: float = 90) -> int:
        code, _, _ = self("status", name, "--watch", "--timeout", str(timeout), "--interval", "0.5")
        return code


@pytest.fixture
def plugin(kube_cluster: KubeCluster, backends: Backends, capsys: pytest.CaptureFixture[str]) -> Plugin:
    return Plugin(str(kube_cluster.kubeconfig), backends.namespace, capsys)


def test_promote_releases_a_paused_revision_and_watch_exits_0_on_healthy(
    operator: OperatorProcess, backends: Backends, plugin: Plugin
) -> None:
    rollout = {**FAST_ROLLOUT, "autoPromote": False}
    backends.create("chat", vllm_spec(rollout=rollout))
    assert plugin.watch("chat", 60) == 0
    code, _, err = plugin("promote", "chat")
    assert (code, "nothing waits for a promotion" in err) == (1, True)

    backends.replace_spec("chat", vllm_spec(model=NEW_MODEL, rollout=rollout))
    assert plugin.watch("chat", 60) == 3
    revision = backends.status("chat")["previewRevision"]
    code, out, _ = plugin("promote", "chat")
    assert code == 0
    assert f"turnout.dev/promote={revision}" in out
    # Right after the annotation the status still says Paused: the watch waits for the operator's answer.
    assert plugin.watch("chat") == 0
    assert backends.service_selector("chat")["turnout.dev/color"] == "green"
    code, out, _ = plugin("status", "chat")
    assert code == 0
    assert "Service:    selects green" in out


def baking(model: str) -> dict[str, Any]:
    # A bake long enough to abort in, short enough to wait out.
    return vllm_spec(model=model, rollout={**FAST_ROLLOUT, "bakeSeconds": 15})


def test_abort_mid_bake_retry_history_and_undo(operator: OperatorProcess, backends: Backends, plugin: Plugin) -> None:
    backends.create("chat", baking("meta-llama/Llama-3.1-8B-Instruct"))
    assert plugin.watch("chat", 60) == 0
    first = backends.status("chat")["activeRevision"]

    backends.annotate("chat", {"kubernetes.io/change-cause": "move to the 3B"})
    backends.replace_spec("chat", baking(NEW_MODEL))
    backends.wait_phase("chat", "Baking", timeout=60)
    second = backends.status("chat")["activeRevision"]
    code, out, _ = plugin("status", "chat")
    assert code == 0
    assert "Phase:      Baking" in out
    assert "Service:    selects green" in out
    assert f"Green:      revision {second}" in out

    # abort mid-bake: the Service goes back to the warm blue, and the watch says it was a rollback.
    code, out, _ = plugin("abort", "chat")
    assert code == 0
    assert out.strip() == f"inferencebackend {backends.namespace}/chat annotated turnout.dev/abort={second}"
    assert plugin.watch("chat") == 1
    status = backends.status("chat")
    assert (status["lastFailureReason"], status["lastFailedRevision"], status["activeColor"]) == (
        "Aborted",
        second,
        "blue",
    )
    assert backends.service_selector("chat")["turnout.dev/color"] == "blue"

    # retry: the aborted revision runs again without a spec change, and this time it stays.
    code, out, _ = plugin("retry", "chat")
    assert code == 0
    assert f"turnout.dev/retry={second}@" in out
    assert "turnout.dev/abort-" in out
    assert plugin.watch("chat") == 0
    assert backends.status("chat")["activeRevision"] == second
    assert "Retrying" in [reason for _, reason, _ in backends.events("chat")]

    backends.wait("chat", lambda s: not s.get("previousRevision"), timeout=30, what="blue scaled down")
    code, out, _ = plugin("history", "chat")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [(row[0], row[1], row[4]) for row in rows] == [("1", first, "-"), ("2", second, "serving")]
    assert out.splitlines()[2].endswith("move to the 3B")

    # undo to revision 1: a normal cutover back to its spec, and the Service ends on it.
    code, out, _ = plugin("undo", "chat", "--to-revision", "1")
    assert code == 0
    assert f"rolled back to revision 1 (turnout revision {first})" in out
    assert plugin.watch("chat") == 0
    status = backends.status("chat")
    assert status["activeRevision"] == first
    assert backends.service_selector("chat")["turnout.dev/color"] == status["activeColor"]
    code, out, _ = plugin("history", "chat")
    last = out.splitlines()[-1]
    assert last.split()[:2] == ["3", first]
    assert last.endswith("kubectl turnout undo chat --to-revision=1")
    assert "HistoryNotRecorded" not in [reason for _, reason, _ in backends.events("chat")]

    code, _, err = plugin("undo", "chat", "--to-revision", "9")
    assert code == 1
    assert err.strip() == f"kubectl turnout undo: {backends.namespace}/chat: revision 9 is not in history (kept: 2, 3)"


def test_pause_holds_the_switch_until_resume(operator: OperatorProcess, backends: Backends, plugin: Plugin) -> None:
    backends.create("chat", vllm_spec(rollout=FAST_ROLLOUT))
    assert plugin.watch("chat", 60) == 0
    assert plugin("pause", "chat")[0] == 0
    backends.replace_spec("chat", vllm_spec(model=NEW_MODEL, rollout=FAST_ROLLOUT))
    assert plugin.watch("chat") == 3
    code, out, _ = plugin("status", "chat")
    assert code == 0
    assert "Held:       by turnout.dev/pause; kubectl turnout resume chat" in out
    assert backends.service_selector("chat")["turnout.dev/color"] == "blue"
    assert plugin("resume", "chat")[0] == 0
    assert plugin.watch("chat") == 0
    assert backends.service_selector("chat")["turnout.dev/color"] == "green"


def test_a_missing_backend_is_one_line_and_exit_1(operator: OperatorProcess, plugin: Plugin) -> None:
    for verb in ("status", "promote", "abort", "retry", "pause", "resume", "history", "undo", "diff"):
        code, out, err = plugin(verb, "nope")
        assert (code, out) == (1, ""), verb
        assert err == (
            f"kubectl turnout {verb}: inferencebackends.turnout.dev/nope in namespace {plugin.namespace} not found\n"
        ), verb


def test_kubectl_finds_the_plugin_installed_from_a_wheel(
    kube_cluster: KubeCluster, backends: Backends, tmp_path: Path
) -> None:
    backends.create("chat", vllm_spec(rollout=FAST_ROLLOUT))
    kubectl = (
        kube_cluster.cluster.binaries.path("kubectl") if kube_cluster.cluster is not None else shutil.which("kubectl")
    )
    assert kubectl is not None, "no kubectl"
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    run = lambda *argv: subprocess.run(argv, check=True, capture_output=True, text=True, timeout=300)  # noqa: E731
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(REPO))
    (wheel,) = wheels.glob("turnout-*.whl")
    run(sys.executable, "-m", "venv", str(venv))
    run(str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel))
    # The wheel's dependencies from this environment, by path only: its editable turnout is not seen.
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        "PATH": f"{venv / 'bin'}{os.pathsep}{Path(kubectl).parent}{os.pathsep}/usr/bin:/bin",
        "KUBECONFIG": str(kube_cluster.kubeconfig),
        "HOME": str(tmp_path),
    }
    listed = subprocess.run([kubectl, "plugin", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert str(venv / "bin" / "kubectl-turnout") in listed.stdout, listed
    found = subprocess.run(
        [kubectl, "turnout", "list", "-n", backends.namespace], env=env, capture_output=True, text=True, timeout=60
    )
    assert found.returncode == 0, found
    assert found.stdout.splitlines()[1].split()[:3] == [backends.namespace, "chat", "vllm"]
    # From the wheel, not from the checkout.
    origin = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import turnout; print(turnout.__file__)"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert origin.startswith(purelib), origin
