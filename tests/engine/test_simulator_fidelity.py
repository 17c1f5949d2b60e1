"""Contract with vLLM: the test ground's vLLM simulator answers as the real vLLM OpenAI server does.

The real server is `vllm serve` from vLLM's cached virtualenv on the test ground's tiny random-weight
Llama (hack/testground/tiny_llama.py, made once and cached), with an API key and a served name; the
simulator runs in a simhost process, as the test ground runs it, with the same name and key. Both get
the same requests, one after the other, and `testground.fidelity.differences` compares each pair: status, content type,
the JSON outline (keys and value types, not values), SSE framing and chunk outlines. The `/metrics`
both serve afterwards must count that traffic in the same series (`metric_outline`).

The requests ask for `ignore_eos`, so the random model's reply is always `max_tokens` long and
finishes with `length` on both (else a sampled end-of-sequence token could end it early).

What differed when this test was first run, and was fixed in the simulator: JSON answers carried
`charset=utf-8` (vLLM's FastAPI sends plain `application/json`), SSE lacked it (vLLM sends
`text/event-stream; charset=utf-8`), `/metrics` lacked the `version=1.0.0` of prometheus-client's
content type; the model card's permission lacked four `allow_*` keys; a chat completion lacked the
null fields vLLM's response model always serialises (`refusal`, `stop_reason`, `token_ids`,
`service_tier`, `prompt_logprobs`, `kv_transfer_params`, ...) and its `system_fingerprint`; a stream
ended with an extra chunk of empty delta where vLLM puts `finish_reason` on the last token's chunk,
and carried the fingerprint on no chunk where vLLM stamps the last one; a refused body (bad JSON,
no `messages`, not an object) had `param: null` where vLLM names the place (`body.31`,
`body.messages`); an unknown path was aiohttp's text 404, not FastAPI's `{"detail": "Not Found"}`;
and `/v1/embeddings` of a chat model was counted under its route where vLLM, which does not register
it, counts `handler="none"`.

Cost, measured here (2 cores): making the model ~12 s; the real server answers `/health` ~40 s after
start (95 s once with a cold page cache) and holds ~2.7 GiB (RSS summed over its process group, the
pages its processes share counted in each); the requests take about a second.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from testground.behaviour import Behaviour
from testground.engines import EngineConfig
from testground.fidelity import Answer, differences, metric_outline, tree_differences
from testground.real_vllm import tiny_model
from testground.simhost_client import SimHostProcess
from tests.preparation import needed_vllm_python

pytestmark = pytest.mark.engine

HOST = "127.0.0.1"
SERVED_NAME = "chat"
API_KEY = "fidelity-key"
START_SECONDS = 600  # a cold start measured 95 s; a slower machine gets room, a dead server is seen at once
SERVE_ARGS = (
    *("--served-model-name", SERVED_NAME, "--enforce-eager", "--dtype", "bfloat16"),
    *("--kv-cache-memory-bytes", str(64 * 2**20), "--max-model-len", "512", "--max-num-seqs", "4"),
)

GOOD = f"Bearer {API_KEY}"
CHAT = {"model": SERVED_NAME, "messages": [{"role": "user", "content": "Say hello."}], "ignore_eos": True}


@dataclass(frozen=True)
class Call:
    """One request, sent alike to both servers."""

    method: str
    path: str
    key: str | None = GOOD
    body: dict[str, Any] | None = None
    raw: str | None = None


CALLS = {
    "health": Call("GET", "/health", key=None),
    "models without a key": Call("GET", "/v1/models", key=None),
    "models with a wrong key": Call("GET", "/v1/models", key="Bearer wrong-key"),
    "models": Call("GET", "/v1/models"),
    "chat without a key": Call("POST", "/v1/chat/completions", key=None, body={**CHAT, "max_tokens": 4}),
    "chat": Call("POST", "/v1/chat/completions", body={**CHAT, "max_tokens": 4}),
    "chat streamed": Call("POST", "/v1/chat/completions", body={**CHAT, "max_tokens": 8, "stream": True}),
    "chat streamed with usage": Call(
        "POST",
        "/v1/chat/completions",
        body={**CHAT, "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True}},
    ),
    "chat of an unknown model": Call("POST", "/v1/chat/completions", body={**CHAT, "model": "no-such-model"}),
    "chat of malformed JSON": Call("POST", "/v1/chat/completions", raw='{"model": "chat", "messages": ['),
    "chat without messages": Call("POST", "/v1/chat/completions", body={"model": SERVED_NAME, "max_tokens": 4}),
    "chat of a JSON list": Call("POST", "/v1/chat/completions", raw="[1, 2]"),
    "embeddings of a chat model": Call("POST", "/v1/embeddings", body={"model": SERVED_NAME, "input": "hello"}),
    "an unknown path": Call("GET", "/v1/no-such-path"),
}
# Chat completions that reach the engine (the plain and the streamed ones), for the metrics' counts.
SERVED = 3

# Deliberate differences, each harmless to what the simulator is for, with the reason: none yet.
DELIBERATE: dict[str, set[str]] = {}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def send(client: httpx.Client, base: str, call: Call) -> Answer:
    headers = {"Authorization": call.key} if call.key else {}
    if call.raw is not None:
        headers["Content-Type"] = "application/json"
    reply = client.request(call.method, base + call.path, headers=headers, json=call.body, content=call.raw)
    return Answer.read(reply.status_code, reply.headers.get("content-type"), reply.text)


def memory_bytes(leader: int) -> int:
    """The resident memory of the process group `leader` leads (vLLM's API server and its engine core)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            status = (entry / "status").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) != leader:  # field 5, the process group
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


@pytest.fixture(scope="module")
def model() -> Path:
    """The tiny random-weight Llama with its tokenizer and chat template, made once and cached (the real
    node's vLLM image serves the same)."""
    return tiny_model(needed_vllm_python())


@pytest.fixture(scope="module")
def real(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of `vllm serve` on the tiny model, stopped (its whole process group) after the module."""
    vllm = Path(needed_vllm_python()).with_name("vllm")
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-serve") / "serve.log"
    command = [str(vllm), "serve", str(model), *SERVE_ARGS, "--host", HOST, "--port", str(port)]
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_API_KEY": API_KEY}
    started = time.monotonic()
    with log.open("wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        base = f"http://{HOST}:{port}"
        wait_for_health(server, base, log, started + START_SECONDS)
        print(
            f"\nvllm serve: /health after {time.monotonic() - started:.1f} s,"
            f" {memory_bytes(server.pid) / 2**30:.2f} GiB resident"
        )
        yield base
    finally:
        stop(server)


def wait_for_health(server: subprocess.Popen[bytes], base: str, log: Path, deadline: float) -> None:
    """Until `/health` answers 200 (the socket refuses connections while the weights load); fails
    with the server's log when it exits or the deadline passes."""
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"vllm serve did not answer /health within {START_SECONDS} s:\n{log.read_text()[-4000:]}")
        try:
            server.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"vllm serve exited with {server.returncode}:\n{log.read_text()[-4000:]}")


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group (it started it), SIGKILL after 30 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        try:
            server.wait(timeout=30)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def simulated() -> Iterator[str]:
    """The base URL of the vLLM simulator serving the same name with the same key, in a simhost process."""
    port = free_port()
    config = EngineConfig("vllm", (SERVED_NAME,), root="/data/models/tiny-llama", api_key=API_KEY)
    with SimHostProcess() as simhost:
        simhost.serve("fidelity/vllm", HOST, port, config, Behaviour())
        yield f"http://{HOST}:{port}"


@pytest.fixture(scope="module")
def answers(real: str, simulated: str) -> dict[str, tuple[Answer, Answer]]:
    """Each call's answer from the real server and from the simulator, the calls in order."""
    with httpx.Client(timeout=60) as client:
        return {name: (send(client, real, call), send(client, simulated, call)) for name, call in CALLS.items()}


@pytest.mark.parametrize("call", list(CALLS))
def test_the_simulator_answers_as_vllm_does(call: str, answers: dict[str, tuple[Answer, Answer]]) -> None:
    real, simulated = answers[call]
    found = set(differences(real, simulated))
    deliberate = DELIBERATE.get(call, set())
    unexpected = "\n  ".join(sorted(found - deliberate))
    assert not unexpected, f"{call}: the simulator answers otherwise than vLLM:\n  {unexpected}"
    assert deliberate <= found, f"{call}: a deliberate difference is gone, strike it: {sorted(deliberate - found)}"


def test_the_simulator_counts_the_metrics_turnout_reads_as_vllm_does(
    real: str, simulated: str, answers: dict[str, tuple[Answer, Answer]]
) -> None:
    counters = ("http_requests_total", "vllm:request_success_total")
    histograms = ("vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds")
    with httpx.Client(timeout=30) as client:
        # The engine records a finished request just after its answer went out: wait for all of them.
        deadline = time.monotonic() + 30
        while True:
            text = client.get(f"{real}/metrics").text
            latency = metric_outline(text, (), histograms[:1])[histograms[0]]
            if (latency and latency["count"] >= SERVED) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        real_answer = client.get(f"{real}/metrics")
        simulated_answer = client.get(f"{simulated}/metrics")
    assert real_answer.headers["content-type"] == simulated_answer.headers["content-type"]
    real_metrics = metric_outline(real_answer.text, counters, histograms)
    simulated_metrics = metric_outline(simulated_answer.text, counters, histograms)
    assert real_metrics[histograms[0]]["count"] == SERVED
    assert tree_differences(real_metrics, simulated_metrics, "metrics") == []
