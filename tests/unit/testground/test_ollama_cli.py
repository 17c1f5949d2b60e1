"""The Ollama image's CLI (`engine_process`): the calls turnout's rendered script makes, against the
simulator; and that script itself, run unchanged in namespaces of its own."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from testground.engine_process import ollama_address, ollama_client
from testground.engines import EngineConfig
from testground.images import engine_command_script
from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.engines.ollama import READY_MARKER
from turnout.render.deployment import render_deployment

HACK = Path(__file__).resolve().parents[3] / "hack"


def test_the_server_is_found_as_ollama_s_client_finds_it() -> None:
    assert ollama_address({}) == ("127.0.0.1", 11434)
    assert ollama_address({"OLLAMA_HOST": "0.0.0.0:11434"}) == ("0.0.0.0", 11434)
    assert ollama_address({"OLLAMA_HOST": "http://127.0.0.2:8080/"}) == ("127.0.0.2", 8080)
    assert ollama_address({"OLLAMA_HOST": "127.0.0.3"}) == ("127.0.0.3", 11434)


def test_list_show_pull_and_cp_are_the_calls_the_script_needs(
    running: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> list[int]:
        async with running(EngineConfig("ollama", ())) as sim:
            env = {"OLLAMA_HOST": f"{sim.host}:{sim.port}"}

            async def cli(*argv: str) -> int:
                return await asyncio.to_thread(ollama_client, list(argv), env)

            return [
                await cli("list"),
                await cli("show", "llama3:8b"),
                await cli("pull", "llama3:8b"),
                await cli("show", "llama3:8b"),
                await cli("cp", "llama3:8b", "chat"),
                await cli("list"),
                await cli("cp", "absent", "other"),
                await cli("show"),
            ]

    codes = asyncio.run(scenario())
    out, err = capsys.readouterr()
    assert codes == [0, 1, 0, 0, 0, 0, 1, 1]
    # The server's own words (server/routes.go: ShowHandler, CopyHandler).
    assert "Error: model 'llama3:8b' not found" in err
    assert 'Error: model "absent" not found' in err
    listed = out.split("NAME")[-1]
    assert "chat:latest" in listed
    assert "llama3:8b" in listed


def test_a_server_that_is_not_up_is_an_error(free_port: Callable[[], int], capsys: pytest.CaptureFixture[str]) -> None:
    assert ollama_client(["list"], {"OLLAMA_HOST": f"127.0.0.1:{free_port()}"}) == 1
    assert "could not connect to ollama app" in capsys.readouterr().err


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or not Path("/mnt").is_dir(),
    reason="needs root, unshare and /mnt",
)
def test_turnout_s_rendered_ollama_container_runs_unchanged_and_stops_at_sigterm(tmp_path: Path) -> None:
    spec = {"engine": "ollama", "model": {"name": "llama3:8b", "servedName": "chat"}}
    pod = render_deployment(Backend.parse("chat", "ns", spec), Color.BLUE, 1)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env["OLLAMA_HOST"] == "0.0.0.0:11434"
    # The image's `ollama` command on PATH, as in the container.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "ollama").write_bytes(engine_command_script())
    (bin_dir / "ollama").chmod(0o755)
    env |= {"PATH": "/usr/local/bin:/usr/bin:/bin", "TESTGROUND_PYTHON": sys.executable, "PYTHONPATH": str(HACK)}
    # A network namespace of its own (the server listens on all addresses: only its loopback there) and a
    # mount namespace with its own /tmp, where the script writes its ready file, and the command in
    # /usr/local/bin. What the command runs may lie under the old /tmp (a clone there, its .venv): the
    # old /tmp is kept on a tmpfs over /mnt, and those directories bound back at their paths.
    under_tmp = [path for path in (sys.prefix, str(HACK)) if Path(path).is_relative_to("/tmp")]
    restore = "".join(f" && mkdir -p {p} && mount --bind /mnt/old{p.removeprefix('/tmp')} {p}" for p in under_tmp)
    isolate = (f"ip link set lo up && mount --bind {bin_dir} /usr/local/bin && mount -t tmpfs tmpfs /mnt"
               f" && mkdir /mnt/old && mount --rbind /tmp /mnt/old && mount -t tmpfs tmpfs /tmp{restore}"
               ' && exec "$@"')  # fmt: skip
    argv = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", isolate, "sh",
            *container["command"], *container["args"]]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # The ready file as the process sees it, through its own root (its mount namespace).
        ready = Path(f"/proc/{process.pid}/root") / READY_MARKER.lstrip("/")
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, "no ready file within 30 s"
            time.sleep(0.1)
        listed = subprocess.run(
            ["nsenter", f"--net=/proc/{process.pid}/ns/net", sys.executable, "-m", "testground.engine_process",
             "ollama", "list"],
            env=env, capture_output=True, text=True, timeout=30, check=True,
        ).stdout  # fmt: skip
        assert "llama3:8b" in listed
        assert "chat:latest" in listed
        process.send_signal(signal.SIGTERM)
        # The script's trap stops the server and exits 143, as in a pod the kubelet stops.
        assert process.wait(timeout=30) == 143
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = process.communicate()[0].decode()
    assert "pulling manifest" in log or "success" in log, log
