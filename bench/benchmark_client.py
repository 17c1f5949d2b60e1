"""The benchmark client's own ceiling on this machine: prints numbers, asserts nothing.

  hack/bench-client        (or: PYTHONPATH=hack:. .venv/bin/python bench/benchmark_client.py [--requests N])

turnout's benchmark (`turnout.benchmark.load`, as `turnout bench` and `rollout.benchmark` run it)
drives an instant vLLM simulator (no pacing: every token at once) in another process on 127.0.0.1,
at several concurrencies, each reply exactly `--max-tokens` tokens (vLLM's `ignore_eos`). Per
concurrency: the requests/s and output tokens/s it drove, and the client's CPU time per request
(this process's, so the simulator's is not in it). 1 / (CPU per request) is what one core of this
machine lets the client drive at most; an engine measured well below that is measured, not the
client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time

from testground.behaviour import Behaviour
from testground.engines import EngineConfig
from testground.simhost_client import SimHostProcess
from turnout.benchmark.load import LoadPlan, run_load
from turnout.benchmark.prompts import built_in_requests

HOST = "127.0.0.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency (default 2000)")
    parser.add_argument("--max-tokens", type=int, default=16, help="output tokens per answer (default 16)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 8, 32, 64], help="concurrencies (default 1 8 32 64)"
    )
    arguments = parser.parse_args()
    port = _free_port()
    with SimHostProcess() as simhost:
        simhost.serve("bench/vllm", HOST, port, EngineConfig("vllm", ("chat",)), Behaviour())
        print(f"cores: {os.cpu_count()}; instant vLLM simulator in its own process; "
              f"{arguments.requests} requests of max_tokens {arguments.max_tokens} per line")  # fmt: skip
        print(f"{'concurrency':>11}  {'requests/s':>10}  {'tokens/s':>9}  {'p50 latency':>11}  "
              f"{'client CPU/request':>18}  {'1 core at most':>14}")  # fmt: skip
        asyncio.run(_warm_up(port))
        for concurrency in arguments.concurrency:
            plan = LoadPlan(
                f"http://{HOST}:{port}/v1",
                "chat",
                [{**request, "ignore_eos": True} for request in built_in_requests()],
                requests=arguments.requests,
                concurrency=concurrency,
                max_tokens=arguments.max_tokens,
            )
            cpu = time.process_time()
            result = asyncio.run(run_load(plan))
            cpu_per_request = (time.process_time() - cpu) / arguments.requests
            assert result.errors == 0, f"the simulator failed requests: {result.errors_by_kind}"
            latency = result.latency_p50_seconds or 0.0
            print(f"{concurrency:>11}  {result.requests_per_second:>10.0f}  {result.output_tokens_per_second:>9.0f}  "
                  f"{latency * 1000:>8.1f} ms  {cpu_per_request * 1000:>15.2f} ms  "
                  f"{1 / cpu_per_request:>8.0f} req/s")  # fmt: skip


async def _warm_up(port: int) -> None:
    plan = LoadPlan(f"http://{HOST}:{port}/v1", "chat", built_in_requests(), requests=50, concurrency=4, max_tokens=4)
    await run_load(plan)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    main()
