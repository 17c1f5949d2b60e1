"""Start a `testground.simhost` process (optionally inside a network namespace) and talk to it."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from testground.behaviour import Behaviour, Degradation
from testground.engines import EngineConfig

# The directory holding the `testground` package, so the child imports the same code.
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


class SimHostError(RuntimeError):
    """The simhost refused a request, did not answer in time, or died."""


class SimHostProcess:
    """A running simhost. Usable as a context manager; `close()` ends it and its simulators.

    `netns`: run it with `ip netns exec <netns>` so it can bind pod IPs; None runs it here.
    `log`: a file that receives its stderr (appended); None inherits ours.
    """

    def __init__(self, netns: str | None = None, log: str | None = None) -> None:
        self.netns = netns
        self.log = log
        self._process: subprocess.Popen[str] | None = None
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def __enter__(self) -> SimHostProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait up to `timeout` s for its ready line."""
        command = [sys.executable, "-m", "testground.simhost"]
        if self.netns is not None:
            command = ["ip", "netns", "exec", self.netns, *command]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        stderr: IO[str] | None = open(self.log, "a") if self.log else None  # noqa: SIM115 - the child owns it
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
                bufsize=1,
            )
        finally:
            if stderr is not None:
                stderr.close()
        threading.Thread(target=self._read, args=(self._process.stdout,), name="simhost-reader", daemon=True).start()
        ready = self._next(timeout)
        if not ready.get("ready"):
            self.close()
            raise SimHostError(f"simhost did not start: {ready}")

    def request(self, request: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Send one request and return its answer; raises SimHostError if it says `ok: false`."""
        process = self._process
        if process is None or process.stdin is None:
            raise SimHostError("simhost is not running")
        with self._lock:
            seq = next(self._seq)
            try:
                process.stdin.write(json.dumps({**request, "seq": seq}) + "\n")
                process.stdin.flush()
            except (BrokenPipeError, ValueError) as error:
                raise SimHostError(f"simhost is gone: {error}") from error
            while True:
                answer = self._next(timeout)
                if answer.get("seq") == seq:
                    break
        if not answer.get("ok"):
            raise SimHostError(str(answer.get("error")))
        return answer

    def serve(
        self,
        sim_id: str,
        host: str,
        port: int,
        config: EngineConfig,
        behaviour: Behaviour,
        degradation: Degradation | None = None,
    ) -> bool:
        """Run (or replace) a simulator; returns whether it listens already."""
        answer = self.request(
            {
                "op": "serve",
                "id": sim_id,
                "host": host,
                "port": port,
                "config": config.to_json(),
                "behaviour": str(behaviour),
                "degradation": (degradation or Degradation()).to_json(),
            }
        )
        return bool(answer["listening"])

    def update(self, sim_id: str, behaviour: Behaviour | None = None, degradation: Degradation | None = None) -> bool:
        """Change its behaviour, its degradation, or both (None: unchanged); returns whether it listens now."""
        request: dict[str, Any] = {"op": "update", "id": sim_id}
        if behaviour is not None:
            request["behaviour"] = str(behaviour)
        if degradation is not None:
            request["degradation"] = degradation.to_json()
        return bool(self.request(request)["listening"])

    def serve_files(self, sim_id: str, host: str, port: int, root: str) -> None:
        """Serve the files under `root` on `host:port` (a pod running Python's file server)."""
        self.request({"op": "files", "id": sim_id, "host": host, "port": port, "root": root})

    def stop_simulator(self, sim_id: str) -> None:
        """Stop one simulator (no error if there is none)."""
        self.request({"op": "stop", "id": sim_id})

    def terminate(self, sim_id: str, pre_stop: float, drain: float, grace: float) -> None:
        """Stop it as a kubelet stops a deleted pod's engine (`Simulator.terminate`), seconds from now;
        it is listed as terminating until it has closed, then no more."""
        self.request({"op": "terminate", "id": sim_id, "pre_stop": pre_stop, "drain": drain, "grace": grace})

    def simulators(self) -> list[dict[str, Any]]:
        """What runs: id, host, port, engine, behaviour, degradation, listening, models."""
        return list(self.request({"op": "list"})["simulators"])

    def close(self, timeout: float = 10.0) -> None:
        """Close its stdin (it then stops every simulator and exits); kill it after `timeout` s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise SimHostError(f"simhost did not answer within {timeout} s") from None
        if answer is None:
            self._answers.put(None)  # keep the end visible to later callers
            raise SimHostError("simhost exited")
        return answer

    def _read(self, stream: IO[str] | None) -> None:
        assert stream is not None
        for line in stream:
            try:
                self._answers.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        self._answers.put(None)
