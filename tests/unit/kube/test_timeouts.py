"""Every API call turnout makes is bounded: a server that accepts and never answers costs seconds."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from kubernetes import client
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from turnout.kube import cluster as cluster_module
from turnout.kube.cluster import BoundedApiClient


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An address on the loopback that accepts connections and never answers them."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def core_api(host: str) -> client.CoreV1Api:
    """The typed core API over turnout's bounded client, without urllib3's own retries."""
    configuration = client.Configuration()
    configuration.host = host
    configuration.retries = 0
    return client.CoreV1Api(BoundedApiClient(configuration))


def test_a_call_that_never_answers_times_out(silent_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_module, "REQUEST_TIMEOUT", (1.0, 0.3))
    core = core_api(silent_server)
    raised: list[BaseException] = []

    def call() -> None:
        try:
            core.read_namespaced_service("chat", "ml")
        except BaseException as error:
            raised.append(error)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(timeout=20)
    assert not caller.is_alive(), "the call is still waiting for an answer"
    assert len(raised) == 1
    assert isinstance(raised[0], MaxRetryError | ReadTimeoutError), raised


def test_a_call_that_sets_its_own_timeout_keeps_it(silent_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_module, "REQUEST_TIMEOUT", (1.0, 60.0))
    core = core_api(silent_server)
    with pytest.raises((MaxRetryError, ReadTimeoutError)):
        core.read_namespaced_service("chat", "ml", _request_timeout=0.3)
