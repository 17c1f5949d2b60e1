"""The `kubectl turnout` verbs with the cluster replaced at the API boundary (`command.Cluster`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from turnout.api.status import Color
from turnout.cli import load_backend
from turnout.plugin import command
from turnout.render import render_backend


class FakeCluster:
    """The calls the verbs make, over a dict of backends; records annotations."""

    default_namespace = "ml"

    def __init__(self, backends: dict[str, dict[str, Any]]) -> None:
        self.objects = backends
        self.annotated: list[tuple[str, str, str, str]] = []

    def backend(self, namespace: str, name: str) -> dict[str, Any]:
        if name not in self.objects:
            raise command.PluginError(f"inferencebackends.turnout.dev/{name} in namespace {namespace} not found")
        return self.objects[name]

    def backends(self, namespace: str | None) -> list[dict[str, Any]]:
        return list(self.objects.values())

    def annotate(self, namespace: str, name: str, key: str, value: str) -> None:
        self.annotated.append((namespace, name, key, value))
        self.objects[name]["status"]["phase"] = "Healthy"

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return {"spec": {"selector": {"turnout.dev/color": "blue"}}}

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return []


def _backend(phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "chat", "namespace": "ml"},
        "spec": {"engine": "vllm"},
        "status": {"phase": phase, **status},
    }


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    fake = FakeCluster({"chat": _backend("Paused", previewRevision="bbb", activeRevision="aaa", activeColor="blue")})
    monkeypatch.setattr(command, "Cluster", lambda kubeconfig, context: fake)
    return fake


def test_promote_annotates_the_preview_revision(cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["promote", "chat"]) == 0
    assert cluster.annotated == [("ml", "chat", "turnout.dev/promote", "bbb")]
    assert "turnout.dev/promote=bbb" in capsys.readouterr().out


def test_promote_refused_in_one_line_when_nothing_waits(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.objects["chat"]["status"] = {"phase": "Healthy", "activeRevision": "aaa"}
    assert command.main(["promote", "chat"]) == 1
    assert cluster.annotated == []
    assert (
        capsys.readouterr().err == "kubectl turnout promote: ml/chat: nothing waits for a promotion (phase Healthy)\n"
    )


def test_abort_annotates_the_revision_in_flight(cluster: FakeCluster) -> None:
    assert command.main(["abort", "chat", "-n", "ml"]) == 0
    assert cluster.annotated == [("ml", "chat", "turnout.dev/abort", "bbb")]


def test_a_missing_backend_is_one_line_and_exit_1(cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["status", "nope"]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_status_json_and_watch_exit_codes(cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["status", "chat", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"]["previewRevision"] == "bbb"
    assert command.main(["status", "chat", "--watch"]) == 3
    cluster.objects["chat"]["status"]["phase"] = "Degraded"
    assert command.main(["status", "chat", "--watch"]) == 1
    cluster.objects["chat"]["status"]["phase"] = "Healthy"
    assert command.main(["status", "chat", "--watch"]) == 0
    assert "Service:    selects blue" in capsys.readouterr().out


def test_watch_times_out_with_exit_4(cluster: FakeCluster) -> None:
    cluster.objects["chat"]["status"]["phase"] = "Progressing"
    assert command.main(["status", "chat", "--watch", "--timeout", "0.01", "--interval", "0.02"]) == 4


def test_list(cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(["list", "-A"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:4] == ["ml", "chat", "vllm", "Paused"]


def test_a_403_says_which_verb_on_which_resource() -> None:
    error = ApiException(status=403, reason="Forbidden")
    error.body = json.dumps({"message": 'inferencebackends.turnout.dev "chat" is forbidden: User "u" cannot patch'})
    text = str(command._api_error(error, "patch", "inferencebackends.turnout.dev/chat in namespace ml"))
    assert text.startswith("forbidden: cannot patch inferencebackends.turnout.dev/chat in namespace ml")


def test_an_unreachable_cluster_is_one_line() -> None:
    text = str(command._api_error(ConnectionRefusedError(111, "Connection refused"), "get", "x"))
    assert text.startswith("cannot reach the cluster")


def test_diff_of_the_rendered_objects_as_the_cluster_holds_them_is_empty_then_shows_a_spec_change(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:

    obj = yaml.safe_load((Path(__file__).resolve().parents[3] / "examples" / "ollama-cpu.yaml").read_text())
    obj["metadata"].setdefault("namespace", "ml")
    obj["status"] = {"phase": "Healthy", "activeColor": "green"}
    served = {o["kind"]: o for o in render_backend(load_backend(obj, "ml"), Color.GREEN, Color.GREEN)}
    for live in served.values():
        live["metadata"]["uid"] = "u"
        live["status"] = {"readyReplicas": 1}

    class DiffCluster(FakeCluster):
        def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
            assert name.endswith("-green")
            return copy.deepcopy(served["Deployment"])

        def service(self, namespace: str, name: str) -> dict[str, Any] | None:
            return copy.deepcopy(served["Service"])

    fake = DiffCluster({obj["metadata"]["name"]: obj})
    monkeypatch.setattr(command, "Cluster", lambda kubeconfig, context: fake)
    assert command.main(["diff", obj["metadata"]["name"]]) == 0
    assert capsys.readouterr().out == ""
    obj["spec"]["replicas"] = 3
    assert command.main(["diff", obj["metadata"]["name"]]) == 1
    assert "+  replicas: 3" in capsys.readouterr().out
