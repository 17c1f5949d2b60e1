"""What the operator's e2e tests drive: the operator as a process, and InferenceBackends as a user sees them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Self

import httpx
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from testground.waiting import wait_for
from turnout.api.labels import BACKEND_LABEL, COLOR_LABEL

GROUP, VERSION, PLURAL = "turnout.dev", "v1alpha1", "inferencebackends"
REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "crds" / "turnout.dev_inferencebackends.yaml"

# Fast enough for tests, slow enough that each phase can be seen.
FAST_ROLLOUT: dict[str, Any] = {
    "readyTimeoutSeconds": 30,
    "bakeSeconds": 6,
    "scaleDownDelaySeconds": 2,
    "checks": {"intervalSeconds": 1, "timeoutSeconds": 1, "successThreshold": 2, "failureThreshold": 2},
}


def ollama_spec(model: str = "llama3:8b", **more: Any) -> dict[str, Any]:
    return {"engine": "ollama", "model": {"name": model, "servedName": "chat"}, "rollout": FAST_ROLLOUT, **more}


def vllm_spec(model: str = "meta-llama/Llama-3.1-8B-Instruct", **more: Any) -> dict[str, Any]:
    return {
        "engine": "vllm",
        "model": {"name": model, "servedName": "chat"},
        "resources": {"gpus": 1},
        "rollout": FAST_ROLLOUT,
        **more,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OperatorProcess:
    """`turnout run` in a child process, as it runs in a cluster; killable at any moment."""

    def __init__(
        self,
        kubeconfig: str,
        log_dir: Path,
        lease: tuple[str, str] | None = None,
        namespaces: tuple[str, ...] = (),
    ) -> None:
        self.kubeconfig = kubeconfig
        self.lease = lease
        """(namespace, name) of the leader-election Lease it stands for; None: it acts alone."""
        self.namespaces = namespaces
        """The namespaces it watches (`--namespace`); empty: all of them."""
        self.log_path = log_dir / "operator.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()
        self.health_port = free_port()

    def start(self) -> None:
        log = self.log_path.open("ab")
        election = []
        if self.lease is not None:
            election = [f"--leader-election-namespace={self.lease[0]}", f"--leader-election-id={self.lease[1]}"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "turnout", "run", "--kubeconfig", self.kubeconfig, "--bind", "127.0.0.1",
             "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
             *election, *(f"--namespace={namespace}" for namespace in self.namespaces)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        log.close()
        wait_for(self._healthy, timeout=60, what=f"operator health endpoint (log: {self.log_path})")

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}: {self.log_tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample of the operator's metrics, 0 when absent."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(f"{name} ")):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def wait_reconciles(self, backends: Backends, name: str, count: int) -> None:
        """Make the operator reconcile `name` `count` more times (a touch wakes it), each to its end."""
        for turn in range(count):
            done = self.metric("turnout_reconciles_total")
            backends.annotate(name, {"test.turnout.dev/touch": str(turn)})
            wait_for(lambda done=done: self.metric("turnout_reconciles_total") > done, timeout=30, what="a reconcile")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Backends:
    """InferenceBackends in one namespace, read and written as `kubectl` would."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)

    def create(self, name: str, spec: dict[str, Any]) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "InferenceBackend", "metadata": {"name": name}}
        body["spec"] = spec
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)

    def replace_spec(self, name: str, spec: dict[str, Any]) -> None:
        """Replace the whole spec, as `kubectl apply` of an edited file does (retrying on a conflict)."""
        for _ in range(10):
            current = self.get(name)
            current["spec"] = spec
            try:
                self.custom.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, current)
                return
            except ApiException as error:
                if error.status != 409:
                    raise
        raise AssertionError(f"could not replace the spec of {name}: 10 conflicts in a row")

    def annotate(self, name: str, annotations: dict[str, str | None]) -> None:
        patch = {"metadata": {"annotations": annotations}}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, patch)

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    @contextlib.contextmanager
    def volume_for(self, claim: str) -> Iterator[str]:
        """A PersistentVolume bound ahead to the claim `claim` of this namespace (the test ground has no
        provisioner), deleted on leaving; yields its name."""
        name = f"{claim}-{self.namespace}"
        self.core.create_persistent_volume(
            {
                "metadata": {"name": name},
                "spec": {
                    "capacity": {"storage": "10Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "hostPath": {"path": "/var/lib/models"},
                    "claimRef": {"namespace": self.namespace, "name": claim},
                },
            }
        )
        try:
            yield name
        finally:
            self.core.delete_persistent_volume(name)

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        return found

    def gone(self, name: str) -> bool:
        """The backend no longer exists (its finalizer is off and the API server deleted it)."""
        try:
            self.get(name)
        except ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions", []) if c["type"] == type_), {})

    def wait(self, name: str, predicate: Callable[[dict[str, Any]], Any], *, timeout: float, what: str) -> Any:
        """Wait until `predicate(status)` is truthy; the timeout message shows the last status."""
        last: dict[str, Any] = {}

        def probe() -> Any:
            nonlocal last
            last = self.status(name)
            return predicate(last)

        try:
            return wait_for(probe, timeout=timeout, what=what, interval=0.2)
        except TimeoutError as error:
            raise AssertionError(f"{error}; last status: {last}") from None

    def wait_phase(self, name: str, phase: str, *, timeout: float = 60) -> dict[str, Any]:
        return self.wait_status(name, timeout=timeout, phase=phase)

    def wait_status(self, name: str, *, timeout: float, **expected: Any) -> dict[str, Any]:
        """Wait until the status has each expected value (camelCase keys); return that status."""
        what = f"{name} status " + ", ".join(f"{k}={v}" for k, v in expected.items())
        status: dict[str, Any] = self.wait(
            name, lambda s: s if all(s.get(k) == v for k, v in expected.items()) else None, timeout=timeout, what=what
        )
        return status

    def wait_failure(self, name: str, *, timeout: float) -> dict[str, Any]:
        """Wait until a revision has failed; return the status that says why."""
        status: dict[str, Any] = self.wait(
            name, lambda s: s if s.get("lastFailureReason") else None, timeout=timeout, what=f"{name} to fail"
        )
        return status

    def service_selector(self, service: str) -> dict[str, str]:
        found: dict[str, str] = self.core.read_namespaced_service(service, self.namespace).spec.selector or {}
        return found

    def deployment_replicas(self, name: str) -> int | None:
        try:
            return int(self.apps.read_namespaced_deployment(name, self.namespace).spec.replicas)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def events(self, name: str) -> list[tuple[str, str, str]]:
        """(type, reason, message) of the Events on the backend, oldest first."""
        found = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={name}")
        items = sorted(found.items, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)
        return [(e.type, e.reason, e.message) for e in items if e.involved_object.kind == "InferenceBackend"]

    def ready_endpoints(self, service: str) -> list[tuple[str, int]]:
        """(ip, port) of the Service's ready endpoints, from its EndpointSlices, as kube-proxy reads them."""
        found = []
        for endpoint_slice in self._endpoint_slices(service):
            port = next((p.port for p in endpoint_slice.ports or [] if p.port), None)
            for endpoint in endpoint_slice.endpoints or []:
                if port and endpoint.conditions and endpoint.conditions.ready:
                    found.extend((address, port) for address in endpoint.addresses)
        return found

    def endpoint_addresses(self, service: str) -> set[str]:
        """Every address the Service's EndpointSlices carry, ready, serving, terminating or not."""
        return {
            address
            for endpoint_slice in self._endpoint_slices(service)
            for endpoint in endpoint_slice.endpoints or []
            for address in endpoint.addresses
        }

    def _endpoint_slices(self, service: str) -> list[Any]:
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        found: list[Any] = slices.items
        return found

    def pod_ips(self, backend: str, color: str) -> set[str]:
        """The IPs of the backend's pods of one color."""
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{BACKEND_LABEL}={backend},{COLOR_LABEL}={color}"
        )
        return {pod.status.pod_ip for pod in pods.items if pod.status.pod_ip}


def wait_seconds(predicate: Callable[[], Any], *, timeout: float, what: str) -> float:
    """Wait for `predicate` and return how many seconds it took."""
    started = time.monotonic()
    wait_for(predicate, timeout=timeout, what=what, interval=0.1)
    return time.monotonic() - started


class InBackground:
    """A loop in a daemon thread for the length of a `with` block; an error it died of is raised at the end."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def loop(self, stop: threading.Event) -> None:
        """The work, until `stop` is set."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._error is not None:
            raise AssertionError(f"{type(self).__name__} failed: {self._error!r}") from self._error

    def _run(self) -> None:
        try:
            self.loop(self._stop)
        except Exception as error:  # raised by __exit__: a loop that died would miss what it watches
            self._error = error


class EndpointClient(InBackground):
    """A client that follows the Service's ready endpoints as kube-proxy would, sending chat requests."""

    def __init__(self, backends: Backends, service: str, api_key: str | None = None, timeout: float = 2) -> None:
        super().__init__()
        self.backends = backends
        self.service = service
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.sent = 0
        self.failures: list[str] = []
        self.failed_at: list[float] = []
        """`time.monotonic()` of each failure."""
        self.models: set[str] = set()
        self.answered_by: dict[str, int] = {}
        """Answers per pod IP."""

    def loop(self, stop: threading.Event) -> None:
        with httpx.Client(timeout=self.timeout, trust_env=False) as http:
            turn = 0
            while not stop.is_set():
                endpoints = self.backends.ready_endpoints(self.service)
                if not endpoints:
                    self.failures.append("no ready endpoint")
                    stop.wait(0.1)
                    continue
                ip, port = endpoints[turn % len(endpoints)]
                turn += 1
                try:
                    self.models.add(self.ask(http, f"http://{ip}:{port}"))
                    self.answered_by[ip] = self.answered_by.get(ip, 0) + 1
                except (httpx.HTTPError, KeyError, ValueError, IndexError, TypeError) as error:
                    self.failures.append(f"{ip}:{port}: {error!r}")
                    self.failed_at.append(time.monotonic())
                self.sent += 1
                stop.wait(0.05)

    def ask(self, http: httpx.Client, base: str) -> str:
        """One request to the pod at `base`: the model its answer names; raises when it is no answer."""
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        answer = http.post(f"{base}/v1/chat/completions", json=body, headers=self.headers)
        answer.raise_for_status()
        model: str = answer.json()["model"]
        return model


class EmbeddingClient(EndpointClient):
    """An OpenAI embeddings client (`POST /v1/embeddings`) following the Service's ready endpoints."""

    def __init__(self, backends: Backends, service: str, model: str, **more: Any) -> None:
        super().__init__(backends, service, **more)
        self.model = model
        self.dimensions: set[int] = set()
        """The lengths of the vectors it got."""

    def ask(self, http: httpx.Client, base: str) -> str:
        answer = http.post(
            f"{base}/v1/embeddings", json={"model": self.model, "input": ["a query", "a passage"]}, headers=self.headers
        )
        answer.raise_for_status()
        body = answer.json()
        vectors = [item["embedding"] for item in body["data"]]
        if len(vectors) != 2 or not all(v and all(isinstance(x, float) for x in v) for v in vectors):
            raise ValueError(f"not two vectors of floats: {str(body)[:200]}")
        self.dimensions.update(len(v) for v in vectors)
        model: str = body["model"]
        return model


Listing = Callable[[], dict[str, Any]]
Watching = Callable[[str], Iterable[dict[str, Any]]]


class ServiceMoves(InBackground):
    """Every change of one Service's color selector while in a `with` block, as `kubectl get -w` shows them.

    One list gives the color and a resourceVersion; each watch resumes from the last resourceVersion
    seen, so a flip and a flip back between two watches are both seen. When that version is too old
    to resume from (410 Gone), a fresh list is compared with the last color seen.
    """

    def __init__(self, list_service: Listing, watch_service: Watching) -> None:
        super().__init__()
        self._list, self._watch = list_service, watch_service
        self.colors: list[str | None] = []  # the selector's color after each move; None: the Service is gone
        self._color, self.resource_version = self._listed()

    @classmethod
    def of(cls, backends: Backends, service: str) -> ServiceMoves:
        """Moves of `service` in the backends' namespace, read from the API server."""
        core, selected = backends.core, f"metadata.name={service}"

        def list_service() -> dict[str, Any]:
            listed = core.list_namespaced_service(backends.namespace, field_selector=selected, _preload_content=False)
            found: dict[str, Any] = json.loads(listed.data)
            return found

        def watch_service(resource_version: str) -> Iterable[dict[str, Any]]:
            # The server ends each watch after a few seconds, so that the thread can notice a stop.
            return watch.Watch().stream(
                core.list_namespaced_service, backends.namespace, field_selector=selected,
                resource_version=resource_version, allow_watch_bookmarks=True, timeout_seconds=2,
            )  # fmt: skip

        return cls(list_service, watch_service)

    def follow(self) -> None:
        """One watch, from the last resourceVersion seen until the server ends it."""
        try:
            for event in self._watch(self.resource_version):
                service = event["raw_object"]
                if event["type"] in ("ADDED", "MODIFIED"):
                    self._moved_to(_color(service))
                elif event["type"] == "DELETED":
                    self._moved_to(None)
                self.resource_version = service["metadata"]["resourceVersion"]
        except ApiException as error:
            if error.status != 410:
                raise
            color, self.resource_version = self._listed()
            self._moved_to(color)

    def _listed(self) -> tuple[str | None, str]:
        listed = self._list()
        items = listed["items"]
        return (_color(items[0]) if items else None), listed["metadata"]["resourceVersion"]

    def _moved_to(self, color: str | None) -> None:
        if color != self._color:
            self.colors.append(color)
            self._color = color

    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.follow()
            except (HTTPError, OSError):
                stop.wait(0.5)  # the API server is away (restarted): resume from the last version seen
            except ApiException as error:
                if error.status not in (429, 500, 503, 504):
                    raise
                stop.wait(0.5)  # the API server is starting again


def _color(service: dict[str, Any]) -> str | None:
    selector: dict[str, str] = service.get("spec", {}).get("selector") or {}
    return selector.get(COLOR_LABEL)


class PodFate(InBackground):
    """When the color's pods were seen deleted (deletionTimestamp set) and when they were gone."""

    def __init__(self, backends: Backends, backend: str, color: str) -> None:
        super().__init__()
        self.backends, self.selector = backends, f"{BACKEND_LABEL}={backend},{COLOR_LABEL}={color}"
        self.deleted_at: float | None = None
        self.gone_at: float | None = None

    def loop(self, stop: threading.Event) -> None:
        while not stop.wait(0.05) and self.gone_at is None:
            pods = self.backends.core.list_namespaced_pod(self.backends.namespace, label_selector=self.selector).items
            now = time.monotonic()
            if self.deleted_at is None and any(pod.metadata.deletion_timestamp for pod in pods):
                self.deleted_at = now
            if not pods and self.deleted_at is not None:
                self.gone_at = now
