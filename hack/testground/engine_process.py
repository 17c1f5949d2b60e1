"""An engine simulator as a container's own process, for pods on the real node.

The test ground's engine image runs ``vllm serve ...`` or ``ollama serve`` as this module: it reads
the command line and environment the way `podspec` reads a pod (same parser, same defaults), serves
on all addresses, and stops as the engine does at SIGTERM (vLLM: finishes the requests in flight for
``--shutdown-timeout`` seconds; Ollama: closes at once). The kubelet does the rest: probes, preStop,
the grace period and SIGKILL. Env ``SIM_<NAME>`` is what the pod annotation
``sim.turnout.dev/<name>`` is to the supervisor's simulators: ``SIM_BEHAVIOUR=slow-start:20``,
``SIM_TOKENS_PER_SECOND=4`` (upper case, ``_`` for ``-``).

In the Ollama image the same command is also Ollama's CLI, for turnout's rendered script, which runs
``ollama serve &`` and then ``ollama list``, ``show``, ``pull`` and ``cp`` against it: each is the HTTP
call Ollama 0.12.6's CLI makes (``cmd/cmd.go``) to the server ``OLLAMA_HOST`` names (``api/client.go``,
``envconfig``: ``127.0.0.1:11434`` by default; ``0.0.0.0`` is dialled as a local address), exit 0 on
success, else ``Error: <the server's message>`` on stderr and exit 1. As a container's process,
``ollama serve`` starts with no model, as a real Ollama with an empty ``OLLAMA_MODELS`` does: the
script's pull lists the model, its copy the alias (the kwok supervisor's simulators, which stand in for
the whole script, list both from the start).

Usage: python -m testground.engine_process vllm|ollama ARG...
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from testground.podspec import (
    BEHAVIOUR_ANNOTATION,
    ERROR_RATIO_ANNOTATION,
    JITTER_ANNOTATION,
    LATENCY_ANNOTATION,
    TOKENS_PER_SECOND_ANNOTATION,
    TTFT_ANNOTATION,
    pod_shutdown,
    pod_sim,
)
from testground.simulator import Simulator

_IMAGES = {"vllm": "vllm/vllm-openai", "ollama": "ollama/ollama"}
_SIM_ANNOTATIONS = (BEHAVIOUR_ANNOTATION, ERROR_RATIO_ANNOTATION, LATENCY_ANNOTATION, TTFT_ANNOTATION,
                    TOKENS_PER_SECOND_ANNOTATION, JITTER_ANNOTATION)  # fmt: skip
# The env the process's pod is read with. Not Ollama's TURNOUT_* names: as a container's process, the
# server starts empty and the rendered script pulls the model (see above).
_ENV_NAMES = ("VLLM_API_KEY", "OLLAMA_HOST")
# Ollama's CLI commands turnout's script runs: (arguments, method, path, body of the arguments).
_OLLAMA_CALLS: dict[str, tuple[int, str, str, Callable[[list[str]], dict[str, Any] | None]]] = {
    "list": (0, "GET", "/api/tags", lambda _: None),
    "ls": (0, "GET", "/api/tags", lambda _: None),
    "show": (1, "POST", "/api/show", lambda a: {"model": a[0]}),
    "pull": (1, "POST", "/api/pull", lambda a: {"model": a[0]}),
    "cp": (2, "POST", "/api/copy", lambda a: {"source": a[0], "destination": a[1]}),
}


def container_pod(engine: str, argv: list[str], environ: dict[str, str]) -> dict[str, Any]:
    """The pod `podspec` would see for this process: its command, its environment, running on all addresses."""
    env = [{"name": name, "value": environ[name]} for name in _ENV_NAMES if name in environ]
    annotations = {}
    for annotation in _SIM_ANNOTATIONS:
        variable = "SIM_" + annotation.removeprefix("sim.turnout.dev/").upper().replace("-", "_")
        if variable in environ:
            annotations[annotation] = environ[variable]
    container = {"name": engine, "image": _IMAGES[engine], "command": [engine, *argv], "env": env}
    return {
        "metadata": {"name": os.uname().nodename, "annotations": annotations},
        "spec": {"containers": [container]},
        "status": {"phase": "Running", "podIP": "0.0.0.0"},
    }


async def run(engine: str, argv: list[str]) -> None:
    """Serve until SIGTERM, then drain as the engine would and return."""
    pod = container_pod(engine, argv, dict(os.environ))
    sim = pod_sim(pod)
    if sim is None:
        raise SystemExit(f"{engine} {' '.join(argv)}: no engine to serve")
    simulator = Simulator(sim.host, sim.port, sim.config(), sim.behaviour, sim.degradation)
    await simulator.start()
    logging.info("%s simulator serving %s on port %d", engine, list(sim.models), sim.port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    # The kubelet already waited out the preStop hook; SIGKILL at the grace period is its to send.
    drain = pod_shutdown(pod).drain
    logging.info("SIGTERM: draining for up to %s s", drain)
    await simulator.terminate(pre_stop=0.0, drain=drain, grace=math.inf)


def ollama_address(environ: dict[str, str]) -> tuple[str, int]:
    """Where Ollama's CLI finds the server: OLLAMA_HOST (``[scheme://]host[:port]``), else 127.0.0.1:11434."""
    value = environ.get("OLLAMA_HOST", "").strip().strip("\"'")
    value = value.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = value.rpartition(":") if ":" in value else (value, "", "")
    return host.strip("[]") or "127.0.0.1", int(port or 11434)


def ollama_client(argv: list[str], environ: dict[str, str]) -> int:
    """Ollama's CLI: `list`, `show NAME`, `pull NAME`, `cp SOURCE DESTINATION`; its exit code."""
    command, args = argv[0], argv[1:]
    needed, method, path, body = _OLLAMA_CALLS[command]
    if len(args) != needed:
        print(f"Error: accepts {needed} arg(s), received {len(args)}", file=sys.stderr)
        return 1
    host, port = ollama_address(environ)
    connection = http.client.HTTPConnection(host, port, timeout=600)
    try:
        payload = body(args)
        connection.request(method, path, json.dumps(payload) if payload is not None else None,
                           {"Content-Type": "application/json"})  # fmt: skip
        response = connection.getresponse()
        lines = [line for line in response.read().decode().splitlines() if line.strip()]
    except OSError:
        print("Error: could not connect to ollama app, is it running?", file=sys.stderr)
        return 1
    finally:
        connection.close()
    # An error comes as the status with {"error": ...}, or, in a streamed pull, as a line of its own.
    errors = [answer["error"] for answer in map(_json_or_none, lines) if isinstance(answer, dict) and "error" in answer]
    if response.status >= 400 or errors:
        print(f"Error: {errors[0] if errors else response.reason}", file=sys.stderr)
        return 1
    if command in ("list", "ls"):
        print(f"{'NAME':<32} {'ID':<14} {'SIZE':<8} MODIFIED")
        for model in json.loads(lines[0])["models"] if lines else []:
            size = f"{model['size'] // 10**9} GB"
            print(f"{model['name']:<32} {model['digest'][:12]:<14} {size:<8} {model['modified_at']}")
    elif command == "cp":
        print(f"copied '{args[0]}' to '{args[1]}'")
    elif command == "pull":
        print(json.loads(lines[-1]).get("status", "") if lines else "")
    return 0


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if len(sys.argv) < 2 or sys.argv[1] not in _IMAGES:
        raise SystemExit("usage: python -m testground.engine_process vllm|ollama ARG...")
    engine, argv = sys.argv[1], sys.argv[2:]
    if engine == "ollama" and argv and argv[0] in _OLLAMA_CALLS:
        raise SystemExit(ollama_client(argv, dict(os.environ)))
    asyncio.run(run(engine, argv))


if __name__ == "__main__":
    main()
