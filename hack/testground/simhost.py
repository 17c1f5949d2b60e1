"""`python -m testground.simhost`: many engine simulators in one asyncio loop, driven over stdin.

Started inside the pod network namespace (`ip netns exec <ns> python -m testground.simhost`) so it
can bind pod IPs. One JSON object per line on stdin, one answer per line on stdout, in order:

    {"op": "serve", "id": "ns/pod", "host": "10.244.0.7", "port": 8000,
     "config": {"engine": "vllm", "models": ["chat"], "root": "...", "api_key": null},
     "behaviour": "healthy", "degradation": {"error_ratio": 0.2, "latency_seconds": 0}}
    {"op": "update", "id": "ns/pod", "behaviour": "fail-after:0"}
    {"op": "update", "id": "ns/pod", "degradation": {"error_ratio": 0, "latency_seconds": 1.5}}
    {"op": "stop", "id": "ns/pod"}
    {"op": "terminate", "id": "ns/pod", "pre_stop": 5, "drain": 110, "grace": 120}
    {"op": "list"}
    {"op": "files", "id": "ns/pod", "host": "10.244.0.9", "port": 8080, "root": "/srv/claim/models--m"}

Answers: `{"ok": true, "id": ..., "listening": bool}` (`list`: `{"ok": true, "simulators": [...]}`)
or `{"ok": false, "error": "..."}`; a request's `seq`, if any, is echoed. The first line out is
`{"ready": true, "pid": N}`. `serve` replaces a simulator with the same id or on the same address;
`degradation` is optional there (none). `update` changes what it is given: the behaviour, the
degradation, or both. `terminate` stops a simulator as a kubelet stops a deleted pod's engine
(`Simulator.terminate`, seconds from now) and answers at once; the simulator is listed with
`"terminating": true` until it has closed, then no more. `files` serves the files under `root`
(a pod running `python3 -m http.server`); `stop` and `terminate` end it at once, and `list` shows it
with `"engine": "files"`.
The process stops every simulator and exits when stdin closes, so it never outlives its parent.
Logs go to stderr and never carry API keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

from testground.behaviour import Behaviour, BehaviourError, Degradation
from testground.engines import EngineConfig
from testground.fileserver import FileServer
from testground.simulator import Simulator

log = logging.getLogger("testground.simhost")


class SimHost:
    """The simulators of one process, keyed by the caller's id."""

    def __init__(self) -> None:
        self.simulators: dict[str, Simulator] = {}
        self.terminating: dict[str, asyncio.Task[None]] = {}
        self.file_servers: dict[str, FileServer] = {}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Carry out one request and return its answer; never raises for a bad request."""
        op = request.get("op")
        try:
            if op == "serve":
                answer = await self._serve(request)
            elif op == "update":
                answer = await self._update(request)
            elif op == "files":
                answer = await self._files(request)
            elif op == "stop":
                answer = await self._stop(str(request["id"]))
            elif op == "terminate" and str(request.get("id")) in self.file_servers:
                answer = await self._stop(str(request["id"]))  # a file server exits at SIGTERM
            elif op == "terminate":
                answer = self._terminate(request)
            elif op == "list":
                answer = {
                    "ok": True,
                    "simulators": [self._describe(i, s, i in self.terminating) for i, s in self.simulators.items()]
                    + [
                        {"id": i, "host": f.host, "port": f.port, "engine": "files", "root": f.root, "listening": True}
                        for i, f in self.file_servers.items()
                    ],
                }
            else:
                answer = {"ok": False, "error": f"unknown op {op!r}; accepted: serve, update, stop, list"}
        except (KeyError, TypeError, ValueError, BehaviourError, OSError) as error:
            answer = {"ok": False, "error": f"{op}: {type(error).__name__}: {error}"}
        if "seq" in request:
            answer["seq"] = request["seq"]
        return answer

    async def close(self) -> None:
        """Stop every simulator."""
        for sim_id in [*self.simulators, *self.file_servers]:
            await self._stop(sim_id)

    async def _files(self, request: dict[str, Any]) -> dict[str, Any]:
        sim_id, host, port = str(request["id"]), str(request["host"]), int(request["port"])
        await self._stop(sim_id)
        server = FileServer(host, port, str(request["root"]))
        await server.start()
        self.file_servers[sim_id] = server
        log.info("serving files of %s on %s:%s for %s", server.root, host, port, sim_id)
        return {"ok": True, "id": sim_id, "listening": True}

    async def _serve(self, request: dict[str, Any]) -> dict[str, Any]:
        sim_id, host, port = str(request["id"]), str(request["host"]), int(request["port"])
        config = EngineConfig.from_json(request["config"])
        behaviour = Behaviour.parse(request.get("behaviour"))
        degradation = Degradation.from_json(request.get("degradation"))
        for other_id, other in list(self.simulators.items()):
            if other_id == sim_id or (other.host, other.port) == (host, port):
                await self._stop(other_id)
        sim = Simulator(host, port, config, behaviour, degradation)
        await sim.start()
        self.simulators[sim_id] = sim
        log.info("serving %s %s on %s:%s as %s, %s", sim_id, config.engine, host, port, behaviour, degradation)
        return {"ok": True, "id": sim_id, "listening": sim.listening}

    async def _update(self, request: dict[str, Any]) -> dict[str, Any]:
        sim_id = str(request["id"])
        sim = self.simulators.get(sim_id)
        if sim is None:
            return {"ok": False, "id": sim_id, "error": f"no simulator {sim_id!r}"}
        # Both read before either applies: a bad one changes nothing.
        degradation = Degradation.from_json(request["degradation"]) if "degradation" in request else None
        behaviour = Behaviour.parse(request["behaviour"]) if "behaviour" in request else None
        if degradation is not None:
            sim.set_degradation(degradation)
            log.info("%s is now %s", sim_id, degradation)
        if behaviour is not None:
            await sim.set_behaviour(behaviour)
            log.info("%s is now %s", sim_id, behaviour)
        return {"ok": True, "id": sim_id, "listening": sim.listening}

    def _terminate(self, request: dict[str, Any]) -> dict[str, Any]:
        sim_id = str(request["id"])
        sim = self.simulators.get(sim_id)
        if sim is None:
            return {"ok": False, "id": sim_id, "error": f"no simulator {sim_id!r}"}
        if sim_id not in self.terminating:
            times = (float(request["pre_stop"]), float(request["drain"]), float(request["grace"]))
            if min(times) < 0:
                raise ValueError(f"terminate needs seconds >= 0, got {times}")
            self.terminating[sim_id] = asyncio.create_task(self._terminated(sim_id, sim, *times))
            log.info("terminating %s: preStop %s s, drain %s s, grace %s s", sim_id, *times)
        return {"ok": True, "id": sim_id, "listening": sim.listening}

    async def _terminated(self, sim_id: str, sim: Simulator, pre_stop: float, drain: float, grace: float) -> None:
        try:
            await sim.terminate(pre_stop, drain, grace)
        finally:
            self.terminating.pop(sim_id, None)
            if self.simulators.get(sim_id) is sim:
                del self.simulators[sim_id]
                log.info("%s exited", sim_id)

    async def _stop(self, sim_id: str) -> dict[str, Any]:
        files = self.file_servers.pop(sim_id, None)
        if files is not None:
            await files.stop()
            log.info("stopped the file server of %s", sim_id)
        sim = self.simulators.pop(sim_id, None)
        task = self.terminating.pop(sim_id, None)
        if task is not None:
            # Its connections are closed below, whatever the termination had got to.
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if sim is not None:
            await sim.stop()
            log.info("stopped %s", sim_id)
        return {"ok": True, "id": sim_id, "listening": False}

    @staticmethod
    def _describe(sim_id: str, sim: Simulator, terminating: bool) -> dict[str, Any]:
        return {
            "id": sim_id,
            "host": sim.host,
            "port": sim.port,
            "engine": sim.state.config.engine,
            "behaviour": str(sim.state.behaviour),
            "degradation": sim.state.degradation.to_json(),
            "listening": sim.listening,
            "models": sim.state.visible_models(),
            "inFlight": sim.state.in_flight,
            "terminating": terminating,
        }


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve_stdin() -> None:
    """Read requests from stdin until it closes (or SIGTERM/SIGINT), then stop everything."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    host = SimHost()
    done = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)

    async def read() -> None:
        while line := await reader.readline():
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except json.JSONDecodeError as error:
                _say({"ok": False, "error": f"not JSON: {error}"})
                continue
            if not isinstance(request, dict):
                _say({"ok": False, "error": "a request is a JSON object"})
                continue
            _say(await host.handle(request))
        done.set()

    reading = asyncio.create_task(read())
    _say({"ready": True, "pid": os.getpid()})
    try:
        await done.wait()
    finally:
        reading.cancel()
        await asyncio.gather(reading, return_exceptions=True)
        await host.close()


def main() -> None:
    """Entry point of `python -m testground.simhost`."""
    logging.basicConfig(
        level=os.environ.get("SIMHOST_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s simhost %(levelname)s %(message)s",
    )
    asyncio.run(serve_stdin())


if __name__ == "__main__":
    main()
