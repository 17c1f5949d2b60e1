"""A local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler on 127.0.0.1 with free ports and their own certificates, and kwok as the
kubelet of fake GPU nodes."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml
from kubernetes import client, config

from testground.binaries import Binaries
from testground.nodes import KWOK_ANNOTATION, create_fake_nodes
from testground.pki import ClusterPki, create_pki
from testground.podnet import PodNetworkPlan
from testground.process import ChildProcess
from testground.waiting import wait_for

STAGES_DIR = Path(__file__).resolve().parent / "stages"
_LOOPBACK = "127.0.0.1"
_NODE_CIDR_MASK = 24  # each node gets a /24 of the pod CIDR, as kubeadm clusters do


_AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [get, list]
  resources:
  - {group: "", resources: [pods, services, secrets, persistentvolumeclaims]}
  - {group: apps, resources: [deployments]}
  - {group: turnout.dev, resources: [inferencebackends]}
  - {group: gateway.networking.k8s.io, resources: [httproutes]}
- level: None
"""


class ComponentFailed(RuntimeError):
    """A control-plane component exited or never became healthy."""


class LocalCluster:
    """Start with ``start()``, stop with ``stop()``; ``kubeconfig`` is valid in between.

    ``workdir`` holds certificates, data and logs (``logs/<component>.log``); it is created
    if missing and removed by ``stop()`` unless ``keep_workdir``.
    """

    def __init__(
        self,
        binaries: Binaries,
        plan: PodNetworkPlan,
        workdir: Path | None = None,
        keep_workdir: bool = False,
    ) -> None:
        self.binaries = binaries
        self.plan = plan
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="turnout-cluster-"))
        self.keep_workdir = keep_workdir
        self.kubeconfig = self.workdir / "kubeconfig"
        self.logs_dir = self.workdir / "logs"
        self.audit_log = self.logs_dir / "audit.log"
        """The API server's audit log (JSON lines): who read what, for tests that count a client's reads."""
        self.server = ""
        self.timings: dict[str, float] = {}  # seconds per start step, for benchmarks
        self._components: list[ChildProcess] = []
        self._pki: ClusterPki | None = None
        self._etcd_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Start every component and create the fake nodes; return once the nodes are Ready.

        ``timeout`` (seconds) bounds each wait. On failure everything started is stopped.
        """
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the components newest first and remove the workdir (unless kept)."""
        while self._components:
            self._components.pop().stop()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def collect_logs(self, destination: Path) -> None:
        """Copy the components' logs (and kwok's config) into ``destination``."""
        if self.logs_dir.exists():
            shutil.copytree(self.logs_dir, destination, dirs_exist_ok=True)

    def restart(self, name: str, timeout: float = 60.0) -> float:
        """Stop one component (``kube-apiserver`` or ``etcd``) as an upgrade or a crash would, start
        it again with the same flags, and return the seconds it was down (until healthy again)."""
        component = next(c for c in self._components if c.name == name)
        began = time.monotonic()
        component.stop()
        component.start()
        url = {"kube-apiserver": f"{self.server}/readyz", "etcd": f"{self._etcd_url}/health"}[name]
        self._wait_healthy(name, url, timeout, component=component)
        return time.monotonic() - began

    @property
    def pids(self) -> list[int]:
        """Process ids of the running components."""
        return [pid for component in self._components if (pid := component.pid) is not None]

    # -- steps -------------------------------------------------------------------------------

    def _start(self, timeout: float) -> None:
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._pki = create_pki(self.workdir / "pki", [_LOOPBACK, self.plan.kubernetes_service_ip])
        self._mark("pki", began)

        etcd_url = self._start_etcd(timeout)
        self._mark("etcd", began)
        self._start_apiserver(etcd_url, timeout)
        self._write_kubeconfig()
        self._mark("kube-apiserver", began)

        health = [self._start_controller_manager(), self._start_scheduler()]
        self._start_kwok()
        for name, url in health:
            self._wait_healthy(name, url, timeout)
        self._mark("controllers", began)

        api = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))  # type: ignore[no-untyped-call]
        names = create_fake_nodes(api)
        wait_for(lambda: _all_ready(api, names), timeout=timeout, what=f"nodes {names} Ready")
        self._mark("nodes-ready", began)

    def _mark(self, step: str, began: float) -> None:
        self.timings[step] = round(time.monotonic() - began, 2)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ChildProcess:
        component = ChildProcess(name, argv, self.logs_dir / f"{name}.log", env=env or {"PATH": "/usr/bin:/bin"})
        component.start()
        self._components.append(component)
        return component

    def _start_etcd(self, timeout: float) -> str:
        client_port, peer_port = _free_port(), _free_port()
        client_url, peer_url = f"http://{_LOOPBACK}:{client_port}", f"http://{_LOOPBACK}:{peer_port}"
        etcd = self._spawn("etcd", [
            str(self.binaries.path("etcd")),
            "--name=testground",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=testground={peer_url}",
            "--unsafe-no-fsync",  # throwaway data: durability costs seconds, buys nothing
            "--log-level=warn",
        ])  # fmt: skip
        self._wait_healthy(etcd.name, f"{client_url}/health", timeout, component=etcd)
        self._etcd_url = client_url
        return client_url

    def _start_apiserver(self, etcd_url: str, timeout: float) -> None:
        assert self._pki
        pki, port = self._pki, _free_port()
        self.server = f"https://{_LOOPBACK}:{port}"
        apiserver = self._spawn("kube-apiserver", [
            str(self.binaries.path("kube-apiserver")),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={_LOOPBACK}",
            f"--advertise-address={_LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'apiserver'}",
            f"--tls-cert-file={pki.apiserver_cert}",
            f"--tls-private-key-file={pki.apiserver_key}",
            f"--client-ca-file={pki.ca_cert}",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={self.plan.service_cidr}",
            "--authorization-mode=Node,RBAC",
            # Aggregated APIs trust the API server's front-proxy identity, as in any real cluster.
            f"--requestheader-client-ca-file={pki.ca_cert}",
            "--requestheader-allowed-names=turnout-front-proxy",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki.front_proxy_cert}",
            f"--proxy-client-key-file={pki.front_proxy_key}",
            # The loopback address may not be published as the kubernetes Service's endpoint.
            "--endpoint-reconciler-type=none",
            # Webhooks and aggregated APIs are dialled at pod IPs (in the pod network),
            # never at ClusterIPs, which lead nowhere here.
            "--enable-aggregator-routing=true",
            "--allow-privileged=true",
            "--profiling=false",
            f"--audit-policy-file={self._write_audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=200",
        ])  # fmt: skip
        self._wait_healthy(apiserver.name, f"{self.server}/readyz", timeout, component=apiserver)

    def _write_audit_policy(self) -> Path:
        """Reads (get, list; not watch) of the kinds turnout reads, at Metadata level; nothing else."""
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(_AUDIT_POLICY)
        return policy

    def _start_controller_manager(self) -> tuple[str, str]:
        assert self._pki
        port = _free_port()
        self._spawn("kube-controller-manager", [
            str(self.binaries.path("kube-controller-manager")),
            *self._client_flags(),
            f"--bind-address={_LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'controller-manager'}",
            "--leader-elect=false",
            f"--root-ca-file={self._pki.ca_cert}",
            f"--service-account-private-key-file={self._pki.service_account_key}",
            "--use-service-account-credentials=false",
            "--allocate-node-cidrs=true",
            f"--cluster-cidr={self.plan.pod_cidr}",
            f"--node-cidr-mask-size={_NODE_CIDR_MASK}",
            f"--service-cluster-ip-range={self.plan.service_cidr}",
        ])  # fmt: skip
        return "kube-controller-manager", f"https://{_LOOPBACK}:{port}/healthz"

    def _start_scheduler(self) -> tuple[str, str]:
        port = _free_port()
        self._spawn("kube-scheduler", [
            str(self.binaries.path("kube-scheduler")),
            *self._client_flags(),
            f"--bind-address={_LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'scheduler'}",
            "--leader-elect=false",
        ])  # fmt: skip
        return "kube-scheduler", f"https://{_LOOPBACK}:{port}/healthz"

    def _start_kwok(self) -> None:
        kwok_home = self.workdir / "kwok"
        kwok_home.mkdir(exist_ok=True)
        stages = self.logs_dir / "kwok-stages.yaml"
        stages.parent.mkdir(parents=True, exist_ok=True)
        stages.write_text("\n---\n".join(p.read_text() for p in sorted(STAGES_DIR.glob("*.yaml"))))
        key, value = KWOK_ANNOTATION
        self._spawn(
            "kwok",
            [
                str(self.binaries.path("kwok")),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={key}={value}",
                f"--cidr={self.plan.pod_cidr}",
                f"--node-ip={self.plan.node_ip}",
                "--node-lease-duration-seconds=40",
            ],
            # kwok reads ~/.kwok/kwok.yaml when it exists: keep it in our own directory.
            env={"PATH": "/usr/bin:/bin", "HOME": str(kwok_home), "KWOK_WORKDIR": str(kwok_home)},
        )

    def _client_flags(self) -> list[str]:
        return [f"--{flag}={self.kubeconfig}" for flag in
                ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig")]  # fmt: skip

    def _write_kubeconfig(self) -> None:
        assert self._pki
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "testground", "cluster": {
                "server": self.server, "certificate-authority": str(self._pki.ca_cert)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate": str(self._pki.admin_cert), "client-key": str(self._pki.admin_key)}}],
            "contexts": [{"name": "testground", "context": {"cluster": "testground", "user": "admin"}}],
            "current-context": "testground",
        }  # fmt: skip
        self.kubeconfig.write_text(yaml.safe_dump(kubeconfig))

    def _wait_healthy(self, name: str, url: str, timeout: float, component: ChildProcess | None = None) -> None:
        components = [component] if component else list(self._components)

        def probe() -> bool:
            for each in components:
                if each.exited() is not None:
                    raise ComponentFailed(f"{each.name} exited:\n{each.log_tail()}")
            with urllib.request.urlopen(url, timeout=2, context=self._tls_context(url)) as response:
                body = response.read().decode()
            if url.endswith("/health"):  # etcd answers JSON, Kubernetes components a plain "ok"
                return bool(json.loads(body).get("health") == "true")
            return bool(response.status == 200 and body == "ok")

        try:
            wait_for(probe, timeout=timeout, what=f"{name} healthy at {url}", interval=0.2, fatal=(ComponentFailed,))
        except ComponentFailed:
            raise
        except TimeoutError as error:
            tails = "\n".join(f"--- {c.name}:\n{c.log_tail(15)}" for c in components)
            raise ComponentFailed(f"{error}\n{tails}") from None

    def _tls_context(self, url: str) -> ssl.SSLContext | None:
        if not url.startswith("https://"):
            return None
        assert self._pki
        if url.startswith(self.server):
            context = ssl.create_default_context(cafile=str(self._pki.ca_cert))
            context.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
            return context
        # Controller-manager and scheduler serve a self-signed certificate on loopback.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _all_ready(api: client.CoreV1Api, names: list[str]) -> bool:
    # Ready is not enough: pods wait until the node lifecycle controller lifts the not-ready taint.
    for name in names:
        node = api.read_node(name)
        if node.status is None or node.spec is None:
            return False
        ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
        if not ready or ready[0].status != "True":
            return False
        if any(t.key.startswith("node.kubernetes.io/") for t in node.spec.taints or []):
            return False
    return True
