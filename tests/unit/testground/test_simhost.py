"""The simhost process: simulators driven over stdin, answers on stdout, gone when stdin closes."""

import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from testground.behaviour import Behaviour, Degradation
from testground.engines import EngineConfig
from testground.simhost_client import SimHostError, SimHostProcess

LOOPBACK = "127.0.0.1"


@pytest.fixture
def simhost() -> Iterator[SimHostProcess]:
    with SimHostProcess() as process:
        yield process


def test_serves_updates_and_stops_simulators(simhost: SimHostProcess, free_port: Callable[[], int]) -> None:
    vllm_port, ollama_port = free_port(), free_port()
    assert simhost.serve("ns/a", LOOPBACK, vllm_port, EngineConfig("vllm", ("chat",)), Behaviour())
    assert simhost.serve("ns/b", LOOPBACK, ollama_port, EngineConfig("ollama", ("llama3",)), Behaviour())
    assert httpx.get(f"http://{LOOPBACK}:{vllm_port}/v1/models").json()["data"][0]["id"] == "chat"
    tags = httpx.get(f"http://{LOOPBACK}:{ollama_port}/api/tags").json()["models"]
    assert [t["name"] for t in tags] == ["llama3:latest"]

    # A bake that goes wrong: the running simulator starts failing when told to.
    simhost.update("ns/a", Behaviour.parse("fail-after:0"))
    assert httpx.get(f"http://{LOOPBACK}:{vllm_port}/health").status_code == 503
    assert {s["id"]: s["behaviour"] for s in simhost.simulators()} == {"ns/a": "fail-after:0", "ns/b": "healthy"}
    simhost.stop_simulator("ns/a")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{LOOPBACK}:{vllm_port}/health")
    assert [s["id"] for s in simhost.simulators()] == ["ns/b"]


def test_degradation_is_served_and_updated_without_touching_the_behaviour(
    simhost: SimHostProcess, free_port: Callable[[], int]
) -> None:
    port = free_port()
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    url = f"http://{LOOPBACK}:{port}/v1/chat/completions"
    simhost.serve("ns/a", LOOPBACK, port, EngineConfig("vllm", ("chat",)), Behaviour(), Degradation(error_ratio=1))
    assert httpx.post(url, json=chat).status_code == 500

    simhost.update("ns/a", degradation=Degradation())
    assert httpx.post(url, json=chat).status_code == 200
    (described,) = simhost.simulators()
    assert (described["behaviour"], described["degradation"]) == ("healthy", Degradation().to_json())

    # A bad degradation changes nothing, the behaviour beside it included.
    with pytest.raises(SimHostError, match="error ratio"):
        simhost.request({"op": "update", "id": "ns/a", "behaviour": "refuse", "degradation": {"error_ratio": 3}})
    assert httpx.post(url, json=chat).status_code == 200


def test_a_new_simulator_on_a_taken_address_replaces_the_old(
    simhost: SimHostProcess, free_port: Callable[[], int]
) -> None:
    port = free_port()
    simhost.serve("ns/old", LOOPBACK, port, EngineConfig("vllm", ("old",)), Behaviour())
    simhost.serve("ns/new", LOOPBACK, port, EngineConfig("vllm", ("new",)), Behaviour())
    assert httpx.get(f"http://{LOOPBACK}:{port}/v1/models").json()["data"][0]["id"] == "new"
    assert [s["id"] for s in simhost.simulators()] == ["ns/new"]


def test_refusing_and_slow_simulators_report_not_listening(
    simhost: SimHostProcess, free_port: Callable[[], int]
) -> None:
    port = free_port()
    assert not simhost.serve("ns/r", LOOPBACK, port, EngineConfig("vllm", ("chat",)), Behaviour.parse("refuse"))
    assert not simhost.update("ns/r", Behaviour.parse("slow-start:30"))
    assert simhost.update("ns/r", Behaviour.parse("healthy"))


def test_bad_requests_get_an_error_answer_and_the_host_carries_on(
    simhost: SimHostProcess, free_port: Callable[[], int]
) -> None:
    with pytest.raises(SimHostError, match="unknown behaviour"):
        simhost.request(
            {
                "op": "serve",
                "id": "ns/x",
                "host": LOOPBACK,
                "port": free_port(),
                "config": {"engine": "vllm", "models": []},
                "behaviour": "sleepy",
            }
        )
    with pytest.raises(SimHostError, match="unknown engine"):
        simhost.request(
            {
                "op": "serve",
                "id": "ns/x",
                "host": LOOPBACK,
                "port": free_port(),
                "config": {"engine": "tgi", "models": []},
            }
        )
    with pytest.raises(SimHostError, match="no simulator"):
        simhost.update("ns/none", Behaviour())
    assert simhost.simulators() == []


def test_a_taken_address_is_an_error(simhost: SimHostProcess) -> None:
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(SimHostError, match="OSError"):
            simhost.serve("ns/x", LOOPBACK, port, EngineConfig("vllm", ("chat",)), Behaviour())


def test_exits_and_frees_its_ports_when_stdin_closes(free_port: Callable[[], int]) -> None:
    port = free_port()
    process = SimHostProcess()
    process.start()
    popen = process._process
    process.serve("ns/a", LOOPBACK, port, EngineConfig("vllm", ("chat",)), Behaviour())
    process.close()
    assert popen is not None
    assert popen.returncode == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{LOOPBACK}:{port}/health")
