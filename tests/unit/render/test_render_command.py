"""`turnout render` as a user runs it, and the `kubectl turnout` stub."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from turnout.cli import kubectl_plugin, main

REPO = Path(__file__).resolve().parents[3]
BACKEND = "apiVersion: turnout.dev/v1alpha1\nkind: InferenceBackend\nmetadata: {name: x}\n"


def run_turnout(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "turnout", *args], input=stdin, capture_output=True, text=True, check=False
    )


def test_render_prints_the_objects_as_a_yaml_stream() -> None:
    done = run_turnout(
        "render", "-f", str(REPO / "examples" / "vllm-tp2-api-key.yaml"), "--color", "green", "--active", "blue"
    )
    assert done.returncode == 0, done.stderr
    objects = list(yaml.safe_load_all(done.stdout))
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in objects] == [
        ("PersistentVolumeClaim", "llama-weights"),
        ("Deployment", "llama-green"),
        ("Service", "llama"),
    ]
    assert objects[2]["spec"]["selector"]["turnout.dev/color"] == "blue"
    assert "REPLACE-WITH" not in done.stdout, "the Secret beside the backend is not rendered"


def test_render_reads_stdin_and_defaults_the_namespace() -> None:
    manifest = BACKEND + "spec: {engine: ollama, model: {name: qwen2.5:0.5b}}\n"
    done = run_turnout("render", "-f", "-", "-n", "team-a", stdin=manifest)
    assert done.returncode == 0, done.stderr
    assert {obj["metadata"]["namespace"] for obj in yaml.safe_load_all(done.stdout)} == {"team-a"}


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (BACKEND + "spec: {engine: vllm, model: {name: m}, resources: {gpus: 0}}\n", "gpus"),
        (BACKEND + "spec: {engine: tgi, model: {name: m}}\n", "spec.engine"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "exactly one InferenceBackend"),
        (BACKEND.replace("v1alpha1", "v1beta9") + "spec: {}\n", "apiVersion"),
    ],
)
def test_an_invalid_backend_is_reported_on_stderr_with_exit_1(manifest: str, message: str) -> None:
    done = run_turnout("render", "-f", "-", stdin=manifest)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "InvalidSpec" in done.stderr
    assert message in done.stderr


def test_unreadable_input_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    for path in (broken, tmp_path / "missing.yaml"):
        done = run_turnout("render", "-f", str(path))
        assert done.returncode == 1
        assert "cannot read" in done.stderr
        assert "Traceback" not in done.stderr


def test_render_in_process_returns_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(REPO / "examples" / "ollama-cpu.yaml")]) == 0
    assert "kind: Deployment" in capsys.readouterr().out


def test_kubectl_plugin_without_a_verb_lists_its_verbs_and_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", ["kubectl-turnout"])
    with pytest.raises(SystemExit) as exited:
        kubectl_plugin()
    assert exited.value.code == 2
    said = capsys.readouterr().err
    for verb in ("status", "list", "promote", "abort", "diff"):
        assert verb in said
