"""A deleted pod's simulator stops as a kubelet stops the engine: serving through the preStop sleep,
then draining the requests in flight as the engine would, killed at the grace period at the latest."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from testground.behaviour import Behaviour, Degradation
from testground.engines import Engine, EngineConfig
from testground.simhost_client import SimHostProcess

LOOPBACK = "127.0.0.1"
PACE = Degradation(tokens_per_second=10)


@pytest.fixture
def simhost() -> Iterator[SimHostProcess]:
    with SimHostProcess() as process:
        yield process


@dataclass
class Stream:
    """One streamed chat completion read in a thread: its words, whether it ended with [DONE], when it ended."""

    url: str
    tokens: int
    words: list[str] = field(default_factory=list)
    done: bool = False
    error: str | None = None
    ended: float | None = None
    first_token: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = {
            "model": "chat",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "max_tokens": self.tokens,
            "ignore_eos": True,
        }
        try:
            with httpx.stream("POST", self.url, json=body, timeout=30) as response:
                for line in response.iter_lines():
                    if line == "data: [DONE]":
                        self.done = True
                    elif line.startswith("data: "):
                        delta = json.loads(line[6:])["choices"][0]["delta"] if "choices" in line else {}
                        if delta.get("content"):
                            self.words.append(delta["content"])
                            self.first_token.set()
        except httpx.HTTPError as error:
            self.error = type(error).__name__
        self.ended = time.monotonic()

    def start(self) -> Stream:
        threading.Thread(target=self.run, daemon=True).start()
        assert self.first_token.wait(10), "the stream never started"
        return self


def serve(simhost: SimHostProcess, port: int, engine: Engine = "vllm", pace: Degradation = PACE) -> str:
    simhost.serve("ns/pod", LOOPBACK, port, EngineConfig(engine, ("chat",)), Behaviour(), pace)
    return f"http://{LOOPBACK}:{port}"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def listed(simhost: SimHostProcess) -> list[str]:
    return [sim["id"] for sim in simhost.simulators()]


def test_a_stream_open_at_deletion_runs_to_its_end_and_the_engine_exits_then(
    simhost: SimHostProcess, free_port: Callable[[], int]
) -> None:
    base = serve(simhost, free_port())
    stream = Stream(f"{base}/v1/chat/completions", tokens=20).start()  # 2 s at 10 tokens/s
    simhost.terminate("ns/pod", pre_stop=0.5, drain=10, grace=12)
    # During the pause it serves as before, new requests included.
    assert httpx.get(f"{base}/v1/models").status_code == 200
    assert [sim["terminating"] for sim in simhost.simulators()] == [True]
    # After SIGTERM it takes no new connection, and finishes the stream it has.
    wait_until(lambda: _refused(base), 5, "the socket to close at SIGTERM")
    wait_until(lambda: stream.ended is not None, 10, "the stream to end")
    assert (stream.done, len(stream.words), stream.error) == (True, 20, None)
    # Nothing left in flight: the engine exits long before its grace period.
    wait_until(lambda: listed(simhost) == [], 2, "the simulator to exit")


def test_a_stream_longer_than_the_grace_period_is_cut_at_the_grace_period(
    simhost: SimHostProcess, free_port: Callable[[], int]
) -> None:
    base = serve(simhost, free_port())
    stream = Stream(f"{base}/v1/chat/completions", tokens=100).start()  # 10 s
    started = time.monotonic()
    simhost.terminate("ns/pod", pre_stop=0.5, drain=10, grace=2)
    wait_until(lambda: stream.ended is not None, 10, "the stream to be cut")
    assert stream.ended is not None
    assert not stream.done
    assert 2 <= stream.ended - started < 4, stream.ended - started
    assert 15 <= len(stream.words) < 60
    assert listed(simhost) == []


@pytest.mark.parametrize("engine", ["vllm", "ollama"])
def test_an_engine_without_a_drain_cuts_its_streams_at_sigterm(
    simhost: SimHostProcess, free_port: Callable[[], int], engine: Engine
) -> None:
    # vLLM without --shutdown-timeout (0, its default) aborts at SIGTERM; Ollama always does.
    # Slow enough that Ollama's whole reply (no ignore_eos there) outlasts the pause.
    base = serve(simhost, free_port(), engine, Degradation(tokens_per_second=2))
    stream = Stream(f"{base}/v1/chat/completions", tokens=100).start()
    started = time.monotonic()
    simhost.terminate("ns/pod", pre_stop=1, drain=0, grace=30)
    wait_until(lambda: stream.ended is not None, 10, "the stream to be cut")
    assert stream.ended is not None
    assert not stream.done
    assert 1 <= stream.ended - started < 3, stream.ended - started
    wait_until(lambda: listed(simhost) == [], 2, "the simulator to exit")


def test_a_stopped_simulator_stops_terminating(simhost: SimHostProcess, free_port: Callable[[], int]) -> None:
    base = serve(simhost, free_port())
    simhost.terminate("ns/pod", pre_stop=30, drain=0, grace=60)
    simhost.stop_simulator("ns/pod")  # the pod is gone for good: the kubelet's kill
    assert _refused(base)
    assert listed(simhost) == []


def _refused(base: str) -> bool:
    try:
        httpx.get(f"{base}/health", timeout=1)
    except httpx.ConnectError:
        return True
    return False


def test_a_pod_gone_for_good_while_its_simulator_closes_still_cuts_its_streams(
    simhost: SimHostProcess, free_port: Callable[[], int]
) -> None:
    base = serve(simhost, free_port())
    stream = Stream(f"{base}/v1/chat/completions", tokens=100).start()  # 10 s
    simhost.terminate("ns/pod", pre_stop=0.5, drain=0, grace=30)
    # At SIGTERM the socket closes, and the simulator closes its connections (taking up to a second);
    # the pod is deleted for good meanwhile.
    wait_until(lambda: _refused(base), 5, "the socket to close at SIGTERM")
    simhost.stop_simulator("ns/pod")
    wait_until(lambda: stream.ended is not None, 3, "the stream to be cut")
    assert not stream.done
