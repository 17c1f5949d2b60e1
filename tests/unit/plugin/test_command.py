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
        self.annotated: list[tuple[str, str, str, str | None]] = []
        self.revisions: list[dict[str, Any]] = []
        self.replaced: list[dict[str, Any]] = []

    def backend(self, namespace: str, name: str) -> dict[str, Any]:
        if name not in self.objects:
            raise command.PluginError(f"inferencebackends.turnout.dev/{name} in namespace {namespace} not found")
        return self.objects[name]

    def backends(self, namespace: str | None) -> list[dict[str, Any]]:
        return list(self.objects.values())

    def annotate(self, namespace: str, name: str, changes: dict[str, str | None]) -> None:
        annotations = self.objects[name]["metadata"].setdefault("annotations", {})
        for key, value in changes.items():
            self.annotated.append((namespace, name, key, value))
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value

    def history(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.revisions)

    def replace(self, obj: dict[str, Any]) -> None:
        self.replaced.append(copy.deepcopy(obj))
        self.objects[obj["metadata"]["name"]] = obj

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return {"spec": {"selector": {"turnout.dev/color": "blue"}}}

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return []


def _backend(phase: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "chat", "namespace": "ml", "uid": "u-1"},
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


def test_promote_lifts_a_pause(cluster: FakeCluster) -> None:
    cluster.objects["chat"]["metadata"]["annotations"] = {"turnout.dev/pause": "true"}
    assert command.main(["promote", "chat"]) == 0
    assert cluster.annotated == [
        ("ml", "chat", "turnout.dev/promote", "bbb"),
        ("ml", "chat", "turnout.dev/pause", None),
    ]


def test_pause_then_resume_and_each_refused_when_there_is_nothing_to_do(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert command.main(["pause", "chat"]) == 0
    assert capsys.readouterr().out == "inferencebackend ml/chat annotated turnout.dev/pause=true\n"
    assert command.main(["pause", "chat"]) == 1
    assert capsys.readouterr().err == "kubectl turnout pause: ml/chat: already paused\n"
    assert command.main(["resume", "chat"]) == 0
    assert capsys.readouterr().out == "inferencebackend ml/chat annotated turnout.dev/pause-\n"
    assert command.main(["resume", "chat"]) == 1
    assert capsys.readouterr().err == "kubectl turnout resume: ml/chat: not paused\n"


def test_retry_names_the_failed_revision_once_and_drops_an_abort_of_it(cluster: FakeCluster) -> None:
    cluster.objects["chat"]["status"] = {"phase": "Degraded", "activeRevision": "aaa", "lastFailedRevision": "bbb"}
    cluster.objects["chat"]["metadata"]["annotations"] = {"turnout.dev/abort": "bbb"}
    assert command.main(["retry", "chat"]) == 0
    (retry, abort) = cluster.annotated
    assert retry[2] == "turnout.dev/retry"
    assert str(retry[3]).startswith("bbb@")
    assert abort == ("ml", "chat", "turnout.dev/abort", None)


def test_retry_refused_without_a_failed_revision_or_during_a_cutover(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert command.main(["retry", "chat"]) == 1  # phase Paused, revision bbb in flight
    assert "a cutover is in flight (revision bbb, phase Paused)" in capsys.readouterr().err
    cluster.objects["chat"]["status"] = {"phase": "Healthy", "activeRevision": "aaa"}
    assert command.main(["retry", "chat"]) == 1
    assert capsys.readouterr().err == "kubectl turnout retry: ml/chat: no failed revision to retry\n"
    assert cluster.annotated == []


def columns(table: str) -> list[list[str]]:
    """A table's cells, cut where its header's columns start."""
    header, *rows = table.splitlines()
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [[line[a:b].strip() for a, b in bounds] for line in (header, *rows)]


def _revision(number: int, revision: str, model: str, cause: str = "", owner: str = "u-1") -> dict[str, Any]:
    annotations = {"kubernetes.io/change-cause": cause} if cause else {}
    return {
        "metadata": {
            "name": f"chat-{revision}",
            "labels": {"turnout.dev/backend": "chat", "turnout.dev/revision": revision},
            "annotations": annotations,
            "ownerReferences": [{"uid": owner}],
        },
        "data": {"spec": {"engine": "vllm", "model": {"name": model}}},
        "revision": number,
    }


def test_history_lists_the_owned_revisions_with_state_and_cause(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.objects["chat"]["status"] = {"phase": "Degraded", "activeRevision": "aaa", "lastFailedRevision": "ccc",
                                         "lastFailureReason": "CheckFailed"}  # fmt: skip
    cluster.revisions = [
        _revision(3, "ccc", "m3", "try 3B"),
        _revision(1, "aaa", "m1"),
        _revision(2, "zzz", "other", owner="another backend of that name, deleted and made again"),
    ]
    assert command.main(["history", "chat"]) == 0
    assert columns(capsys.readouterr().out) == [
        ["REVISION", "TURNOUT-REVISION", "ENGINE", "MODEL", "STATE", "CHANGE-CAUSE"],
        ["1", "aaa", "vllm", "m1", "serving", "<none>"],
        ["3", "ccc", "vllm", "m3", "failed (CheckFailed)", "try 3B"],
    ]
    assert command.main(["history", "chat", "--revision", "3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == {"revision": 3, "spec": {"engine": "vllm", "model": {"name": "m3"}}}
    assert command.main(["history", "chat", "--revision", "2"]) == 1
    assert capsys.readouterr().err == (
        "kubectl turnout history: revision 2 is not in the history of ml/chat (kept: 1, 3)\n"
    )


def test_undo_writes_the_earlier_spec_back_with_its_cause(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.objects["chat"]["spec"] = {"engine": "vllm", "model": {"name": "m3"}}
    cluster.objects["chat"]["metadata"]["resourceVersion"] = "42"
    cluster.revisions = [_revision(1, "aaa", "m1"), _revision(2, "bbb", "m2"), _revision(3, "ccc", "m3")]
    assert command.main(["undo", "chat"]) == 0
    assert "rolled back to revision 2 (turnout revision bbb)" in capsys.readouterr().out
    assert command.main(["undo", "chat", "--to-revision", "1"]) == 0
    first, second = cluster.replaced
    assert first["spec"] == {"engine": "vllm", "model": {"name": "m2"}}
    assert second["spec"] == {"engine": "vllm", "model": {"name": "m1"}}
    assert second["metadata"]["resourceVersion"] == "42"  # a concurrent edit is a conflict, not lost
    assert second["metadata"]["annotations"]["kubernetes.io/change-cause"] == (
        "kubectl turnout undo chat --to-revision=1"
    )
    assert "status" not in second


def test_undo_refuses_a_revision_not_kept_and_skips_the_spec_already_there(
    cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.objects["chat"]["spec"] = {"engine": "vllm", "model": {"name": "m1"}}
    cluster.revisions = [_revision(1, "aaa", "m1")]
    assert command.main(["undo", "chat"]) == 1
    assert capsys.readouterr().err == "kubectl turnout undo: ml/chat: no revision before 1 in history\n"
    assert command.main(["undo", "chat", "--to-revision", "7"]) == 1
    assert capsys.readouterr().err == "kubectl turnout undo: ml/chat: revision 7 is not in history (kept: 1)\n"
    assert command.main(["undo", "chat", "--to-revision", "1"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert cluster.replaced == []


def test_an_unreachable_cluster_is_one_line_and_exit_1_for_every_verb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on port 1 of the loopback: every verb's first call is refused.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "ml"}}],
                "current-context": "x",
            }
        )
    )
    for verb in ("status", "list", "promote", "abort", "retry", "pause", "resume", "history", "undo", "diff"):
        named = [] if verb == "list" else ["chat"]
        assert command.main(["--kubeconfig", str(kubeconfig), verb, *named]) == 1, verb
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith(f"kubectl turnout {verb}: cannot reach the cluster"), err
        assert err.count("\n") == 1, err
