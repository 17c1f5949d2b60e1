"""An engine simulator as a container's own process, for pods on the real node.

The test ground's engine image runs ``vllm serve ...`` or ``ollama serve`` as this module: it reads
the command line and environment the way `podspec` reads a pod (same parser, same defaults), serves
on all addresses, and stops as the engine does at SIGTERM (vLLM: finishes the requests in flight for
``--shutdown-timeout`` seconds; Ollama: closes at once). The kubelet does the rest: probes, preStop,
the grace period and SIGKILL. Env ``SIM_<NAME>`` is what the pod annotation
``sim.turnout.dev/<name>`` is to the supervisor's simulators: ``SIM_BEHAVIOUR=slow-start:20``,
``SIM_TOKENS_PER_SECOND=4`` (upper case, ``_`` for ``-``).

Usage: python -m testground.engine_process vllm|ollama ARG...
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys
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
_ENV_NAMES = ("VLLM_API_KEY", "OLLAMA_HOST", "TURNOUT_OLLAMA_MODEL", "TURNOUT_SERVED_NAME")


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


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if len(sys.argv) < 2 or sys.argv[1] not in _IMAGES:
        raise SystemExit("usage: python -m testground.engine_process vllm|ollama ARG...")
    asyncio.run(run(sys.argv[1], sys.argv[2:]))


if __name__ == "__main__":
    main()
