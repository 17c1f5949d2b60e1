"""The Ollama start script, run by /bin/sh against a stand-in `ollama` that records its calls."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from turnout.engines.ollama import READY_MARKER, START_SCRIPT

FAKE_OLLAMA = r"""#!/bin/sh
# Stand-in for the ollama CLI: `serve` runs until SIGTERM, the client commands need it up.
state=$FAKE_STATE
echo "$*" >> "$state/calls"
case "$1" in
  serve)
    trap 'echo stopped >> "$state/server"; exit 0' TERM
    echo up > "$state/server"
    while :; do sleep 0.1; done ;;
  list) grep -q up "$state/server" 2>/dev/null ;;
  show) grep -qxF "$2" "$state/pulled" 2>/dev/null ;;
  pull) [ -z "${FAKE_PULL_FAILS:-}" ] && echo "$2" >> "$state/pulled" ;;
  cp) echo "$2" >> "$state/pulled" ;;
esac
"""


def start(tmp_path: Path, model: str, served: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Run the start script as the container would, with the marker moved into `tmp_path`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "ollama"
    fake.write_text(FAKE_OLLAMA)
    fake.chmod(0o755)
    marker = tmp_path / "ready"
    script = START_SCRIPT.replace(READY_MARKER, str(marker))
    process = subprocess.Popen(
        ["/bin/sh", "-c", script],
        cwd=tmp_path,
        # Its own process group, so the test can end the stand-in server however the script ends.
        start_new_session=True,
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_STATE": str(tmp_path),
            "TURNOUT_OLLAMA_MODEL": model,
            "TURNOUT_SERVED_NAME": served,
            **env,
        },
    )
    return process, marker


def wait_for(marker: Path, process: subprocess.Popen[bytes], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not marker.exists():
        assert process.poll() is None, f"the start script exited with {process.returncode}"
        assert time.monotonic() < deadline, "the pod never became ready"
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the script and anything it left running."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_model_is_pulled_and_aliased_before_ready_and_sigterm_stops_the_server(tmp_path: Path) -> None:
    model = 'llama3"; touch pwned; echo "'
    served = "chat$(touch pwned2)`touch pwned3`"
    process, marker = start(tmp_path, model, served)
    try:
        wait_for(marker, process)
        recorded = calls(tmp_path)
        assert f"pull {model}" in recorded
        assert recorded[-1] == f"cp {model} {served}"
        assert not list(tmp_path.glob("pwned*")), "a model name ran as shell code"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 143
        assert "stopped" in (tmp_path / "server").read_text()
    finally:
        stop(process)


def test_no_alias_when_the_served_name_is_the_model(tmp_path: Path) -> None:
    process, marker = start(tmp_path, "llama3", "llama3:latest")
    try:
        wait_for(marker, process)
        assert not [call for call in calls(tmp_path) if call.startswith("cp ")]
    finally:
        stop(process)


def test_model_already_on_the_volume_is_not_pulled_again(tmp_path: Path) -> None:
    (tmp_path / "pulled").write_text("llama3:8b\n")
    process, marker = start(tmp_path, "llama3:8b", "chat")
    try:
        wait_for(marker, process)
        assert not [call for call in calls(tmp_path) if call.startswith("pull ")]
    finally:
        stop(process)


@pytest.mark.timeout(30)
def test_failed_pull_stops_the_container_unready(tmp_path: Path) -> None:
    process, marker = start(tmp_path, "no-such-model", "chat", FAKE_PULL_FAILS="1")
    try:
        assert process.wait(timeout=15) != 0
        assert not marker.exists()
    finally:
        stop(process)
