"""turnout's benchmark agrees with vLLM's own, `vllm bench serve`, on the same endpoint: output
throughput and mean time to first token within 10% of each other.

The endpoint is the test ground's vLLM simulator in a process of its own, paced at a known speed
(first token after 0.1 s, then 50 tokens/s per answer, no jitter). vLLM's benchmark runs from its
cached virtualenv (vllm_bench_serve.py) with the OpenAI-chat backend, a random dataset, a small
tokenizer made by the test with the `tokenizers` library, and `--ignore-eos`; turnout's benchmark
then sends the same load (the same concurrency, requests and output tokens, with `ignore_eos` in
each request as vLLM's does), never both at once. Measured here (2 cores): vLLM 351.7 output
tokens/s and a mean TTFT of 105.8 ms, turnout 351.5 tokens/s and 106 ms, against the pace's
355.6 tokens/s and 100 ms (the simulator's timers and the clients' parsing add a few ms).

Systematic differences, none of which shows against vLLM (or this simulator, which streams as vLLM does):
- TTFT: vLLM's benchmark times the first chunk that has `choices`, the role chunk
  (`delta: {role: assistant, content: ""}`); turnout times the first chunk with content. vLLM sends
  the role chunk with the first token, so both read the same; against a server that sends the role
  chunk before prefill ends, vLLM's benchmark would read a TTFT too short and turnout would not.
- End-to-end latency: vLLM's benchmark ends a request at its last chunk with `choices` (the finish
  chunk); turnout at `[DONE]`, after the usage chunk: microseconds later.
- Requests: vLLM's benchmark sends one more, its initial test request, outside its measurement;
  turnout sends only the requests it measures (the simulator's counter shows it).
- Both count output tokens from the engine's `usage` and divide by the run's wall-clock duration,
  from the first request sent to the last answer.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from testground.behaviour import Behaviour, Degradation
from testground.engines import EngineConfig
from testground.simhost_client import SimHostProcess
from tests.preparation import run_in_vllm
from turnout.api.benchmark import BenchmarkResult, TokenCount
from turnout.benchmark.load import LoadPlan, run_load
from turnout.benchmark.prompts import built_in_requests

pytestmark = pytest.mark.engine

BENCH_SCRIPT = Path(__file__).with_name("vllm_bench_serve.py")
HOST = "127.0.0.1"
TTFT_SECONDS = 0.1
TOKENS_PER_SECOND = 50.0
OUTPUT_TOKENS = 32
CONCURRENCY = 8
REQUESTS = 64
AGREEMENT = 0.10


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """The paced vLLM simulator's base URL, served by a simhost process of its own."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = int(probe.getsockname()[1])
    pace = Degradation(ttft_seconds=TTFT_SECONDS, tokens_per_second=TOKENS_PER_SECOND)
    with SimHostProcess() as simhost:
        simhost.serve("agreement/vllm", HOST, port, EngineConfig("vllm", ("chat",)), Behaviour(), pace)
        yield f"http://{HOST}:{port}"


def received(endpoint: str) -> int:
    """The chat completions the simulator has received so far."""
    count: int = httpx.get(f"{endpoint}/sim/requests", timeout=10).json()["chatCompletions"]
    return count


@pytest.fixture(scope="module")
def vllm_result(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What `vllm bench serve` measured, as its saved result file has it."""
    args = [
        *("--backend", "openai-chat", "--base-url", endpoint, "--endpoint", "/v1/chat/completions"),
        *("--model", "chat", "--dataset-name", "random", "--random-input-len", "16"),
        *("--random-output-len", str(OUTPUT_TOKENS), "--ignore-eos", "--num-prompts", str(REQUESTS)),
        *("--max-concurrency", str(CONCURRENCY), "--request-rate", "inf", "--disable-tqdm"),
    ]
    tokenizer = tmp_path_factory.mktemp("tokenizer")
    result: dict[str, Any] = json.loads(run_in_vllm(BENCH_SCRIPT, {"tokenizer": str(tokenizer), "args": args}))
    return result


@pytest.fixture(scope="module")
def turnout_result(endpoint: str, vllm_result: dict[str, Any]) -> tuple[BenchmarkResult, int]:
    """What turnout's benchmark measured after vLLM's was done, and the requests the simulator received meanwhile."""
    before = received(endpoint)
    prompts = [{**request, "ignore_eos": True} for request in built_in_requests()]
    plan = LoadPlan(
        f"{endpoint}/v1", "chat", prompts, REQUESTS, CONCURRENCY, max_tokens=OUTPUT_TOKENS, timeout_seconds=300
    )
    result = asyncio.run(run_load(plan))
    return result, received(endpoint) - before


def test_both_answered_every_request_with_the_tokens_asked(
    vllm_result: dict[str, Any], turnout_result: tuple[BenchmarkResult, int]
) -> None:
    turnout, _ = turnout_result
    assert (vllm_result["completed"], vllm_result["failed"]) == (REQUESTS, 0)
    assert vllm_result["total_output_tokens"] == REQUESTS * OUTPUT_TOKENS
    assert (turnout.completed, turnout.errors, turnout.timed_out) == (REQUESTS, 0, False)
    assert turnout.output_tokens == REQUESTS * OUTPUT_TOKENS
    assert turnout.tokens_counted_from is TokenCount.USAGE


def test_output_throughput_agrees_within_10_percent(
    vllm_result: dict[str, Any], turnout_result: tuple[BenchmarkResult, int]
) -> None:
    turnout, _ = turnout_result
    theirs, ours = vllm_result["output_throughput"], turnout.output_tokens_per_second
    print(f"output tokens/s: vllm bench serve {theirs:.1f}, turnout {ours:.1f}")
    assert ours == pytest.approx(theirs, rel=AGREEMENT)


def test_mean_ttft_agrees_within_10_percent(
    vllm_result: dict[str, Any], turnout_result: tuple[BenchmarkResult, int]
) -> None:
    turnout, _ = turnout_result
    theirs, ours = vllm_result["mean_ttft_ms"] / 1000, turnout.ttft_mean_seconds
    print(f"mean TTFT: vllm bench serve {theirs * 1000:.1f} ms, turnout {(ours or 0) * 1000:.1f} ms")
    assert ours == pytest.approx(theirs, rel=AGREEMENT)


def test_turnout_sent_exactly_the_requests_it_measured(turnout_result: tuple[BenchmarkResult, int]) -> None:
    _, sent = turnout_result
    assert sent == REQUESTS
