"""Pods on the real node and a client of a Service's ClusterIP: what the real-node e2e tests and
`bench/switch.py` share to watch a Service's selector switch the way a client sees it (through
kube-proxy, from inside the ground's network namespace)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from testground.images import ENGINE_IMAGES
from testground.nodes import GPU_RESOURCE, REAL_NODE, REAL_NODE_TAINT
from testground.realnode import socket_in_netns
from testground.waiting import wait_for

VLLM_IMAGE = ENGINE_IMAGES[0]


def engine_container(
    env: dict[str, str], *, served_name: str = "chat", shutdown_timeout: int = 0, pre_stop: int = 0
) -> dict[str, Any]:
    """A vLLM container as turnout renders one (command, args, probe, preStop sleep), run by the simulator."""
    container: dict[str, Any] = {
        "name": "vllm",
        "image": VLLM_IMAGE,
        "imagePullPolicy": "Never",
        "command": ["vllm", "serve"],
        "args": ["tiny", f"--served-model-name={served_name}", "--port=8000", f"--shutdown-timeout={shutdown_timeout}"],
        "ports": [{"name": "http", "containerPort": 8000}],
        "env": [{"name": name, "value": value} for name, value in env.items()],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1},
        "resources": {"limits": {GPU_RESOURCE: "1"}},
    }
    if pre_stop:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": pre_stop}}}
    return container


def pod_spec(container: dict[str, Any], grace: int = 30) -> dict[str, Any]:
    return {
        "containers": [container],
        "nodeSelector": {"kubernetes.io/hostname": REAL_NODE},
        "tolerations": [REAL_NODE_TAINT],
        "terminationGracePeriodSeconds": grace,
    }


class ClusterIpClient(threading.Thread):
    """Asks `GET /v1/models` of a ClusterIP over and over, each on a new connection, from the ground's
    network namespace (where kube-proxy's rules are); keeps (time, served model) of every answer."""

    def __init__(self, netns: str, ip: str) -> None:
        super().__init__(daemon=True)
        self.netns, self.ip = netns, ip
        self.answers: list[tuple[float, str]] = []
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.answers.append((time.monotonic(), ask_models(self.netns, self.ip, timeout=5)))
            except Exception as error:  # every failure is reported by the test
                self.failures.append(repr(error))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def seen(self, name: str) -> bool:
        return any(answer == name for _, answer in list(self.answers))

    def only_since(self, name: str, since: float, at_least: int) -> bool:
        later = [answer for t, answer in list(self.answers) if t > since]
        tail = later[-at_least:]
        return len(tail) == at_least and set(tail) == {name}


def ask_models(netns: str, ip: str, timeout: float) -> str:
    """The first model `GET /v1/models` at ip:8000 lists, asked on a new connection from `netns`."""
    connection = netns_connection(netns, ip, 8000, timeout)
    try:
        connection.request("GET", "/v1/models")
        return str(json.loads(connection.getresponse().read())["data"][0]["id"])
    finally:
        connection.close()


def netns_connection(netns: str, ip: str, port: int, timeout: float) -> http.client.HTTPConnection:
    """An HTTP connection to ip:port made from network namespace `netns` (a ClusterIP is reached there)."""
    sock = socket_in_netns(netns)
    sock.settimeout(timeout)
    try:
        sock.connect((ip, port))
    except OSError:
        sock.close()
        raise
    connection = http.client.HTTPConnection(ip, port, timeout=timeout)
    connection.sock = sock
    return connection


@dataclass(frozen=True)
class Completion:
    """One streamed chat completion as its client saw it (monotonic times)."""

    started: float
    ended: float
    chunks: int  # `data:` lines before `[DONE]`
    tokens: int  # `usage.completion_tokens` of the last chunk (asked for with `include_usage`)
    error: str | None  # None: HTTP 200 and `data: [DONE]` at the end


def stream_chat(
    netns: str, ip: str, *, port: int = 8000, model: str = "chat", max_tokens: int = 16, api_key: str | None = None,
    timeout: float = 30, opened: threading.Event | None = None,
) -> Completion:  # fmt: skip
    """A streamed chat completion of exactly `max_tokens` tokens (`ignore_eos`; the count comes in the last
    chunk's usage) asked from `netns` on a new connection; `opened` is set at its first chunk. Never
    raises: a failure is the completion's error."""
    started = time.monotonic()
    chunks, tokens, done, error = 0, 0, False, None
    body = {"model": model, "messages": [{"role": "user", "content": "tell me a story"}], "stream": True,
            "stream_options": {"include_usage": True}, "max_tokens": max_tokens, "ignore_eos": True}  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if api_key is not None:
        headers["Authorization"] = f"Bearer {api_key}"
    connection = None
    try:
        connection = netns_connection(netns, ip, port, timeout)
        connection.request("POST", "/v1/chat/completions", json.dumps(body), headers)
        response = connection.getresponse()
        if response.status != 200:
            error = f"HTTP {response.status}: {response.read()[:300]!r}"
        else:
            for raw in response:
                line = raw.decode().strip()
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: "):
                    chunks += 1
                    tokens = (json.loads(line[6:]).get("usage") or {}).get("completion_tokens", tokens)
                    if opened is not None:
                        opened.set()
            error = None if done else f"no [DONE] after {chunks} chunks"
    except Exception as failure:  # the caller reports every failure
        error = repr(failure)
    finally:
        if connection is not None:
            connection.close()
    return Completion(started, time.monotonic(), chunks, tokens, error)


class ClusterIpStreams(threading.Thread):
    """Streamed chat completions through a ClusterIP from `netns`, one after another, each on a new
    connection, until stopped; keeps every `Completion`."""

    def __init__(self, netns: str, ip: str, **stream: Any) -> None:
        super().__init__(daemon=True)
        self.netns, self.ip, self.stream = netns, ip, stream
        self.completions: list[Completion] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.completions.append(stream_chat(self.netns, self.ip, **self.stream))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)

    def failures(self) -> list[str]:
        return [c.error for c in list(self.completions) if c.error is not None]


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def ready_pod(core: client.CoreV1Api, namespace: str, name: str | None = None, label: str | None = None) -> Any:
    pods = [core.read_namespaced_pod(name, namespace)] if name else core.list_namespaced_pod(
        namespace, label_selector=label).items  # fmt: skip
    return next((p for p in pods if is_ready(p)), None)


@dataclass(frozen=True)
class Switch:
    """A selector switch as a client saw it, in seconds from the patch."""

    first_new: float
    """To the first answer from the new pods."""
    last_old: float
    """To the last answer from the old pods (0 when none came after the patch)."""
    requests: int
    failures: list[str]


def blue_green_service(core: client.CoreV1Api, namespace: str, netns: str, timeout: float) -> str:
    """Engine pods `blue` and `green` on the real node (each serving a model of its name) and a Service
    `chat` in front of blue; returns its ClusterIP once kube-proxy routes it (from `netns`)."""
    for color in ("blue", "green"):
        pod = {"metadata": {"name": color, "labels": {"color": color}},
               "spec": pod_spec(engine_container({}, served_name=color))}  # fmt: skip
        core.create_namespaced_pod(namespace, pod)
    for color in ("blue", "green"):
        wait_for(lambda c=color: ready_pod(core, namespace, c), timeout=timeout, what=f"{color} Ready")
    service = {"metadata": {"name": "chat"},
               "spec": {"selector": {"color": "blue"}, "ports": [{"port": 8000, "targetPort": 8000}]}}  # fmt: skip
    cluster_ip = str(core.create_namespaced_service(namespace, service).spec.cluster_ip)
    # Until kube-proxy has written the Service's rules, a ClusterIP leads nowhere.
    wait_for(lambda: ask_models(netns, cluster_ip, timeout=1) == "blue", timeout=timeout,
             what="blue through the ClusterIP (kube-proxy)")  # fmt: skip
    return cluster_ip


def switch_selector(
    core: client.CoreV1Api, namespace: str, service: str, netns: str, cluster_ip: str, to: str, timeout: float
) -> Switch:
    """Patch `service`'s selector to `{"color": to}` while a `ClusterIpClient` asks, and time what it saw;
    returns once 20 answers in a row came from `to`."""
    client_ = ClusterIpClient(netns, cluster_ip)
    client_.start()
    try:
        wait_for(lambda: bool(client_.answers), timeout=timeout, what="the client's first answer")
        switched = time.monotonic()
        core.patch_namespaced_service(service, namespace, {"spec": {"selector": {"color": to}}})
        wait_for(lambda: client_.only_since(to, switched, at_least=20), timeout=timeout,
                 what=f"only {to} through the ClusterIP")  # fmt: skip
    finally:
        client_.stop()
    answers = list(client_.answers)
    first_new = min(t for t, name in answers if name == to and t > switched) - switched
    last_old = max((t for t, name in answers if name != to and t > switched), default=switched) - switched
    return Switch(first_new, last_old, len(answers), list(client_.failures))
