"""Watch pods and run an engine simulator on each engine pod's IP and port, as its annotations say.

The mapping from a pod to its simulator is `podspec.pod_sim` (the contract is documented there).
Changing annotation `sim.turnout.dev/behaviour`, `sim.turnout.dev/error-ratio`, `sim.turnout.dev/latency`,
`sim.turnout.dev/ttft`, `sim.turnout.dev/tokens-per-second` or `sim.turnout.dev/jitter` on a running pod
changes its simulator at once, without a restart, e.g.
`kubectl annotate pod chat-green-x sim.turnout.dev/behaviour=fail-after:0 --overwrite` or
`kubectl annotate pod chat-green-x sim.turnout.dev/error-ratio=0.2 --overwrite`.

A pod running `python3 -m http.server --directory DIR` (turnout's inspector pod) gets a static file
server instead (`podspec.pod_files`): over the directory of the claim it mounts, read from the claim's
PersistentVolume, which must be a hostPath volume (the test writes the files there).

A deleted pod is stopped as a kubelet stops it (`podspec.pod_shutdown`, `Simulator.terminate`): its
simulator serves on through the preStop sleep, drains as its engine would, and once it has closed
(or, for a pod without a simulator, once its preStop sleep is over) the supervisor deletes the pod
for good, as the kubelet does when the pod's containers have exited. kwok's `pod-delete` stage
deletes it a second after its grace period, should the supervisor not.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from testground.nodes import REAL_NODE
from testground.podspec import PodConfigError, PodFiles, PodSim, pod_files, pod_shutdown, pod_sim
from testground.simhost_client import SimHostError, SimHostProcess

log = logging.getLogger(__name__)

# A watch ends after this long and restarts; pods still waiting for a Secret are retried then.
_WATCH_SECONDS = 20
# How often terminating pods are looked at: whether their simulators have closed.
_REAP_SECONDS = 0.1


@dataclass(frozen=True)
class _Terminating:
    """A deleted pod whose engine is stopping: by its simulator (`sim_id`), or at `exits_at` (monotonic)."""

    namespace: str
    name: str
    sim_id: str | None
    exits_at: float


class PodSupervisor:
    """Runs simulators for the pods of the cluster in `kubeconfig`, inside network namespace `netns`.

    `netns=None` runs them in this namespace (only for loopback tests). `log_path` receives the
    simulators' log. `start()` serves the pods that exist before it returns; `stop()` ends every
    simulator. Also a context manager.
    """

    def __init__(self, kubeconfig: str, netns: str | None, log_path: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.netns = netns
        self.simhost = SimHostProcess(netns, log_path)
        self._api: Any = None
        self._core: Any = None
        self._running: dict[str, PodSim] = {}  # by pod uid
        self._files: dict[str, PodFiles] = {}  # by pod uid: file servers
        self._complaints: dict[str, str] = {}  # by pod uid: the last reason it is not served
        self._waiting_for_secret: dict[str, dict[str, Any]] = {}  # by pod uid: the pod
        self._terminating: dict[str, _Terminating] = {}  # by pod uid
        self._terminating_lock = threading.Lock()
        self._reaper: threading.Thread | None = None
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PodSupervisor:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the simhost, serve the pods there are, then follow changes in a thread."""
        self._api = config.new_client_from_config(config_file=self.kubeconfig)
        self._core = client.CoreV1Api(self._api)
        self.simhost.start()
        try:
            version = self._resync()
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._follow, args=(version,), name="pod-supervisor", daemon=True)
        self._thread.start()
        self._reaper = threading.Thread(target=self._reap, name="pod-reaper", daemon=True)
        self._reaper.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop following pods and end every simulator."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            # Watch.stop() unblocks a read in progress; repeat it in case a new watch was opening.
            for _ in range(int(timeout * 10)):
                if self._watch is not None:
                    self._watch.stop()
                thread.join(0.1)
                if not thread.is_alive():
                    break
            else:
                log.error("the pod watch did not stop within %s s", timeout)
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.join(timeout)
        self.simhost.close()
        self._running.clear()
        if self._api is not None:
            self._api.close()
            self._api = None

    def simulators(self) -> list[dict[str, Any]]:
        """What the simhost runs now: id (`namespace/name/uid`), host, port, engine, behaviour, ..."""
        return self.simhost.simulators()

    def _follow(self, version: str | None) -> None:
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._resync()
                else:
                    self._retry_secrets()
                version = self._watch_from(version)
            except ApiException as error:
                if error.status != 410:
                    log.warning("pod watch failed: %s %s; listing again", error.status, error.reason)
                    self._stopping.wait(1.0)
                version = None
            except Exception:
                if self._stopping.is_set():
                    break
                log.exception("pod watch failed; listing again")
                self._stopping.wait(1.0)
                version = None

    def _watch_from(self, version: str) -> str:
        """Apply pod events from `version` until the watch ends; returns the last version seen."""
        self._watch = watch.Watch()
        for event in self._watch.stream(
            self._core.list_pod_for_all_namespaces,
            resource_version=version,
            timeout_seconds=_WATCH_SECONDS,
            allow_watch_bookmarks=True,
            deserialize=False,
        ):
            if self._stopping.is_set():
                break
            pod = event["object"]
            version = pod.get("metadata", {}).get("resourceVersion") or version
            if event["type"] == "DELETED":
                self._forget(pod["metadata"]["uid"])
            elif event["type"] in ("ADDED", "MODIFIED"):
                self._observe(pod)
        return version

    def _resync(self) -> str:
        """List every pod, serve what should run and stop what should not; returns the list's version."""
        listing = self._api.sanitize_for_serialization(self._core.list_pod_for_all_namespaces())
        pods = {p["metadata"]["uid"]: p for p in listing.get("items", [])}
        for uid in (set(self._running) | set(self._files)) - set(pods):
            self._forget(uid)
        for pod in pods.values():
            self._observe(pod)
        return str(listing["metadata"]["resourceVersion"])

    def _retry_secrets(self) -> None:
        for pod in list(self._waiting_for_secret.values()):
            self._observe(pod)

    def _observe(self, pod: dict[str, Any]) -> None:
        """Make the pod's simulator match the pod."""
        uid = pod["metadata"]["uid"]
        self._waiting_for_secret.pop(uid, None)
        if (pod.get("spec") or {}).get("nodeName") == REAL_NODE:
            return  # its containers run for real there
        if pod["metadata"].get("deletionTimestamp"):
            self._terminate(pod)
            return
        try:
            files = pod_files(pod)
            want = pod_sim(pod)
        except PodConfigError as error:
            self._complain(uid, f"pod {pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}: {error}")
            files = want = None
        if files is not None or uid in self._files:
            self._serve_files(uid, files)
            return
        have = self._running.get(uid)
        if want is None:
            if have is not None:
                self._forget(uid)
            return
        self._complaints.pop(uid, None)
        try:
            live = want.live_update(have) if have is not None else None
            if live is not None:
                if live != (None, None):
                    self.simhost.update(want.id, *live)
                    self._running[uid] = want
                return
            api_key = self._read_key(want, pod)
            if want.api_key_ref is not None and api_key is None:
                return
            self.simhost.serve(want.id, want.host, want.port, want.config(api_key), want.behaviour, want.degradation)
            self._running[uid] = want
        except SimHostError as error:
            self._running.pop(uid, None)
            self._complain(uid, f"simulator for {want.id} on {want.host}:{want.port}: {error}")

    def _serve_files(self, uid: str, files: PodFiles | None) -> None:
        """Serve (or stop serving) a file server pod's claim directory."""
        have = self._files.get(uid)
        if files == have:
            return
        if have is not None:
            self._forget(uid)
        if files is None:
            return
        try:
            root = self._claim_directory(files.namespace, files.claim)
            self.simhost.serve_files(files.id, files.host, files.port, str(Path(root, files.subpath)))
            self._files[uid] = files
            self._complaints.pop(uid, None)
        except (ApiException, LookupError, SimHostError) as error:
            self._complain(uid, f"file server {files.id} on {files.host}:{files.port}: {error}")

    def _claim_directory(self, namespace: str, claim: str) -> str:
        """The host directory of a bound claim's hostPath PersistentVolume."""
        bound = self._core.read_namespaced_persistent_volume_claim(claim, namespace)
        if not bound.spec.volume_name:
            raise LookupError(f"claim {namespace}/{claim} is not bound")
        volume = self._core.read_persistent_volume(bound.spec.volume_name)
        if volume.spec.host_path is None:
            raise LookupError(f"volume {volume.metadata.name} of claim {namespace}/{claim} is no hostPath volume")
        return str(volume.spec.host_path.path)

    def _terminate(self, pod: dict[str, Any]) -> None:
        """Stop a deleted pod's engine as a kubelet would; once, however often the pod is seen."""
        meta = pod["metadata"]
        uid = meta["uid"]
        with self._terminating_lock:
            if uid in self._terminating:
                return
        shutdown = pod_shutdown(pod)
        if uid in self._files:
            self._forget(uid)  # a file server exits at SIGTERM
            shutdown = dataclasses.replace(shutdown, pre_stop=0.0)
        have = self._running.get(uid)
        sim_id = None
        if have is not None:
            try:
                self.simhost.terminate(have.id, shutdown.pre_stop, shutdown.drain, shutdown.grace)
                sim_id = have.id
            except SimHostError as error:
                log.warning("could not terminate the simulator of %s: %s", have.id, error)
        exits_at = time.monotonic() + min(shutdown.pre_stop, shutdown.grace)
        with self._terminating_lock:
            self._terminating[uid] = _Terminating(meta.get("namespace", ""), meta["name"], sim_id, exits_at)

    def _reap(self) -> None:
        """Delete for good each terminating pod whose engine has stopped, as the kubelet does."""
        while not self._stopping.wait(_REAP_SECONDS):
            with self._terminating_lock:
                terminating = dict(self._terminating)
            if not terminating:
                continue
            try:
                listed = (
                    {sim["id"] for sim in self.simhost.simulators()}
                    if any(t.sim_id for t in terminating.values())
                    else set()
                )
            except SimHostError as error:
                log.warning("could not list the simulators: %s", error)
                continue
            now = time.monotonic()
            for uid, pod in terminating.items():
                stopped = pod.sim_id not in listed if pod.sim_id is not None else now >= pod.exits_at
                if stopped:
                    self._delete_for_good(uid, pod)

    def _delete_for_good(self, uid: str, pod: _Terminating) -> None:
        try:
            self._core.delete_namespaced_pod(
                pod.name,
                pod.namespace,
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions=client.V1Preconditions(uid=uid)),
            )
        except ApiException as error:
            if error.status not in (404, 409):
                log.warning("could not delete pod %s/%s: %s %s", pod.namespace, pod.name, error.status, error.reason)
                return
        with self._terminating_lock:
            self._terminating.pop(uid, None)

    def _forget(self, uid: str) -> None:
        with self._terminating_lock:
            self._terminating.pop(uid, None)
        self._waiting_for_secret.pop(uid, None)
        self._complaints.pop(uid, None)
        files = self._files.pop(uid, None)
        if files is not None:
            try:
                self.simhost.stop_simulator(files.id)
            except SimHostError as error:
                log.warning("could not stop the file server of %s: %s", files.id, error)
        have = self._running.pop(uid, None)
        if have is not None:
            try:
                self.simhost.stop_simulator(have.id)
            except SimHostError as error:
                log.warning("could not stop the simulator of %s: %s", have.id, error)

    def _read_key(self, want: PodSim, pod: dict[str, Any]) -> str | None:
        """The API key from the pod's Secret, or None (then the pod waits for the Secret)."""
        ref = want.api_key_ref
        if ref is None:
            return None
        try:
            secret = self._core.read_namespaced_secret(ref.name, ref.namespace)
            return base64.b64decode((secret.data or {})[ref.key]).decode()
        except (ApiException, KeyError) as error:
            reason = getattr(error, "reason", None) or f"no key {ref.key!r}"
            self._complain(
                pod["metadata"]["uid"], f"{want.id} waits for Secret {ref.namespace}/{ref.name} key {ref.key}: {reason}"
            )
            self._waiting_for_secret[pod["metadata"]["uid"]] = pod
            return None

    def _complain(self, uid: str, message: str) -> None:
        # Once per pod and reason: pods change status often, the log should not repeat itself.
        if self._complaints.get(uid) != message:
            self._complaints[uid] = message
            log.warning("%s", message)
