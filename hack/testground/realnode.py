"""A real node beside the kwok nodes: containerd, kubelet and kube-proxy (iptables mode) in the test
ground's network namespace, with a fake GPU device plugin and images built on this machine.

Where each part keeps its state, and how every host-wide change is undone:

- Network: the processes run in the ground's namespace (its iptables, routes, ports); the CNI bridge
  ``tnbr0`` gives pods the node's own /24, ``10.(245+2·slot).1.0/24``, outside the pod CIDR that the
  namespace holds as local; the host routes that /24 into the namespace (as it does the pod CIDR).
  The API server listens on the host's loopback only: a forwarder (`_Forwarder`) listens on the
  namespace's 127.0.0.1 and connects to it.
- Files: containerd's root and state, the kubelet's root, CNI config and logs live in `workdir`.
  All node processes share one mount namespace of their own (``unshare``, propagation slave) with a
  tmpfs on ``/run`` (containerd's shim sockets, runc's state, the pods' network namespaces) and on
  ``/var/log`` (the kubelet's container log links) and ``/var/lib`` (the kubelet's device-plugin
  socket, at a fixed path): nothing of theirs lands on the host's.
- Cgroups: pods go under the cgroup root ``/turnout-<netns>`` (cgroupfs driver), made here in
  every hierarchy and removed on stop once its processes are killed.
- Sysctls: the kubelet sets a few host-wide ones (`KUBELET_SYSCTLS`); their values before it ran
  are restored on stop.
- A record of all of this is written on start (`RECORD_DIR`); `reap_stale_real_nodes` undoes what a
  killed session left, and `TestGround.start` calls it first.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

from testground.binaries import NodeBinaries
from testground.images import PAUSE_IMAGE, engine_images, import_images, pause_image
from testground.nodes import GPU_RESOURCE, REAL_NODE, REAL_NODE_TAINT
from testground.podnet import PodNetworkPlan, process_alive
from testground.process import ChildProcess
from testground.runc_mounts import wrapper_script
from testground.waiting import wait_for

log = logging.getLogger(__name__)

RECORD_DIR = Path(tempfile.gettempdir()) / "turnout-real-nodes"
KUBELET_SYSCTLS = (
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
)
BRIDGE = "tnbr0"
# The kubelet's device-plugin socket is at this fixed path whatever its root dir: a tmpfs on /var/lib
# in the node's mount namespace holds it.
DEVICE_PLUGINS = "/var/lib/kubelet/device-plugins"
FAKE_GPUS = 8
_CGROUP_MOUNTS = "/proc/self/mounts"
_CGROUP_ROOT = re.compile(r"/turnout-[A-Za-z0-9][A-Za-z0-9_.-]*")
# Where a kubelet, containerd and CNI keep state by default: none of them may appear on the host.
_RUNTIME_PATHS = ("/var/lib/kubelet", "/var/lib/containerd", "/var/lib/cni", "/run/containerd", "/var/log/pods",
                  "/var/log/containers", "/etc/cni", "/opt/cni")  # fmt: skip
_CLONE_NEWNET = 0x40000000  # os.setns and os.CLONE_NEWNET arrive with Python 3.12


def node_pod_cidr(plan: PodNetworkPlan) -> str:
    """The real node's pod /24: beside kwok's node address, outside the pod CIDR (local in the namespace)."""
    sixteen = int(ipaddress.ip_address(plan.node_ip)) & ~0xFFFF
    return f"{ipaddress.ip_address(sixteen + 256)}/24"


class NodeFailed(RuntimeError):
    """A process of the real node exited while it started."""


@dataclass(frozen=True)
class Record:
    """What a started node changed on the host, written before it changes it."""

    owner: int  # the test process
    netns: str
    workdir: str
    cgroup_root: str
    host_route: str  # the node's pod CIDR routed into the namespace
    sysctls: dict[str, str]  # values before the kubelet ran
    iptables: str  # the directory of the iptables commands the node used
    node_ip: str  # given to the namespace's loopback
    service_cidr: str  # routed in the namespace, for clients of ClusterIPs there
    mount_namespace: int = 0  # inode of the node processes' mount namespace, once known

    def __post_init__(self) -> None:
        # Every process in the cgroups under this root is killed on undo: a root that is not the
        # node's own (empty, "/", a path outside /turnout-*) would name the host's processes.
        if not _CGROUP_ROOT.fullmatch(self.cgroup_root):
            raise ValueError(f"a real node's record with the cgroup root {self.cgroup_root!r}, not /turnout-<netns>")

    @classmethod
    def load(cls, path: Path) -> Record:
        return cls(**json.loads(path.read_text()))


class RealNode:
    """``real-node-0``: start with `start`, stop with `stop` (which undoes every host-wide change)."""

    def __init__(self, binaries: NodeBinaries, plan: PodNetworkPlan, netns: str, admin_kubeconfig: Path,
                 logs_dir: Path) -> None:  # fmt: skip
        self.binaries = binaries
        self.plan = plan
        self.netns = netns
        self.admin_kubeconfig = admin_kubeconfig
        self.logs_dir = logs_dir
        self.pod_cidr = node_pod_cidr(plan)
        self.workdir = Path(tempfile.mkdtemp(prefix="turnout-real-node-"))
        self.timings: dict[str, float] = {}
        self._record_path = RECORD_DIR / f"{netns}.json"
        self._record: Record | None = None
        self._holder: ChildProcess | None = None
        self._components: list[ChildProcess] = []
        self._forwarder: _Forwarder | None = None
        self.host_before: dict[str, Any] = {}
        """`host_state` just before the node started, for tests that check it left nothing."""

    @property
    def record(self) -> Record:
        """What this node changed on the host (available once started)."""
        if self._record is None:
            raise RuntimeError("the real node is not started")
        return self._record

    def pids(self) -> set[int]:
        """The node's processes: containerd, shims, kubelet, device plugin, kube-proxy, containers."""
        return _node_pids(self._record) if self._record is not None else set()

    def resident_mib(self) -> float:
        """The resident memory of the node's processes, containers included, in MiB."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{pid}/status").read_text().splitlines()
                total += sum(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return total / 1024

    @property
    def containerd_address(self) -> str:
        return str(self.workdir / "containerd.sock")

    def start(self, timeout: float = 120.0) -> None:
        """Start containerd, import the images, start kubelet, device plugin, kube-proxy; return once the
        node is Ready with its GPUs. On failure everything is undone and the error re-raised."""
        began = time.monotonic()
        try:
            self._start(timeout, began)
        except BaseException:
            self.stop()
            raise
        self.timings["total"] = round(time.monotonic() - began, 2)

    def _start(self, timeout: float, began: float) -> None:
        self.host_before = host_state(self.binaries.iptables)
        record = Record(
            owner=os.getpid(),
            netns=self.netns,
            workdir=str(self.workdir),
            cgroup_root=f"/turnout-{self.netns}",
            host_route=self.pod_cidr,
            sysctls={name: _sysctl(name) for name in KUBELET_SYSCTLS},
            iptables=str(self.binaries.iptables),
            node_ip=self.plan.node_ip,
            service_cidr=self.plan.service_cidr,
        )
        self._write_record(record)
        for hierarchy in _cgroup_hierarchies():
            (hierarchy / record.cgroup_root.lstrip("/")).mkdir(exist_ok=True)
        _run(["ip", "route", "add", self.pod_cidr, "via", self.plan.netns_link_ip, "src", self.plan.host_link_ip])
        self._in_netns(["sysctl", "-qw", "net.ipv4.ip_forward=1"])  # the namespace's own
        # The kubelet wants its node IP on an interface; kwok's node address is local there already.
        _run(["ip", "-n", self.netns, "addr", "replace", f"{self.plan.node_ip}/32", "dev", "lo"])
        # A ClusterIP needs a route before kube-proxy's OUTPUT rules rewrite it to a pod's address.
        _run(["ip", "-n", self.netns, "route", "add", self.plan.service_cidr, "dev", "lo", "src", self.plan.node_ip])
        self._write_configs(record.cgroup_root)

        self._holder = self._spawn_raw("mount-namespace", [
            "unshare", "--mount", "--propagation", "slave", "--", "sh", "-c",
            "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/log && mount -t tmpfs tmpfs /var/lib"
            f" && mkdir -p {DEVICE_PLUGINS} && exec sleep infinity",
        ])  # fmt: skip
        holder_pid = self._holder.pid
        assert holder_pid is not None
        # Not before its tmpfs mounts are there: until then it may still be in our mount namespace.
        wait_for(lambda: _mounted_tmpfs(holder_pid, "/var/lib"), timeout=10, what="the node's mount namespace")
        self._write_record(
            record := dataclasses.replace(record, mount_namespace=os.stat(f"/proc/{holder_pid}/ns/mnt").st_ino)
        )
        self._mark("mount-namespace", began)

        containerd = self._spawn("containerd", [
            str(self.binaries.containerd / "containerd"), "--config", str(self.workdir / "containerd.toml"),
        ])  # fmt: skip
        wait_for(lambda: self._containerd_ready(containerd), timeout=timeout, what="containerd's socket")
        self._mark("containerd", began)
        images = self.workdir / "images"
        images.mkdir()
        self.import_images([pause_image(images, self.binaries.kube / "pause"), *engine_images(images)])
        self._mark("images", began)

        self._forwarder = _Forwarder(self.netns, self._api_port())
        self._forwarder.start()
        self._write_node_kubeconfig(self._forwarder.port)
        api = client.CoreV1Api(config.new_client_from_config(str(self.admin_kubeconfig)))  # type: ignore[no-untyped-call]
        api.create_node(body=self._node_object())  # type: ignore[arg-type]
        self._spawn("kubelet", [
            str(self.binaries.kube / "kubelet"),
            f"--config={self.workdir / 'kubelet.yaml'}",
            f"--kubeconfig={self.workdir / 'node.kubeconfig'}",
            f"--root-dir={self.workdir / 'kubelet'}",
            f"--cert-dir={self.workdir / 'kubelet-pki'}",
            f"--hostname-override={REAL_NODE}",
            f"--node-ip={self.plan.node_ip}",
            "--v=1",
        ])  # fmt: skip
        plugins = Path(f"/proc/{holder_pid}/root{DEVICE_PLUGINS}")
        wait_for(lambda: self._alive_and((plugins / "kubelet.sock").exists), timeout=timeout,
                 what="the kubelet's device-plugin socket", interval=0.2,
                 fatal=(NodeFailed,))  # fmt: skip
        self._spawn("fakegpu", [
            str(self.binaries.kube / "fakegpu"), f"-dir={DEVICE_PLUGINS}",
            f"-resource={GPU_RESOURCE}", f"-count={FAKE_GPUS}",
        ])  # fmt: skip
        self._spawn(
            "kube-proxy", [str(self.binaries.kube / "kube-proxy"), f"--config={self.workdir / 'kube-proxy.yaml'}"]
        )
        wait_for(lambda: self._ready(api), timeout=timeout, what=f"{REAL_NODE} Ready with {FAKE_GPUS} {GPU_RESOURCE}",
                 interval=0.2, fatal=(NodeFailed,))  # fmt: skip
        self._mark("node-ready", began)

    def import_images(self, archives: list[Path]) -> None:
        """Import image archives (`images.write_image_archive`) into the node's containerd."""
        import_images(self.binaries.containerd / "ctr", self.containerd_address, archives)

    def stop(self) -> None:
        """Stop every process of the node and undo what it changed on the host; safe to call twice."""
        if self._forwarder is not None:
            self._forwarder.stop()
            self._forwarder = None
        while self._components:
            self._components.pop().stop(grace=5.0)
        # After the kubelet is gone, so that it cannot register the node again; the pod garbage
        # collector then deletes the pods that were bound to it.
        with contextlib.suppress(Exception):
            api = client.CoreV1Api(config.new_client_from_config(str(self.admin_kubeconfig)))  # type: ignore[no-untyped-call]
            api.delete_node(REAL_NODE)
        record = Record.load(self._record_path) if self._record_path.exists() else None
        if record is not None:
            undo(record)
        if self._holder is not None:
            self._holder.stop()
            self._holder = None
        if record is not None:
            _remove_workdir(Path(record.workdir))
            self._record_path.unlink(missing_ok=True)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def collect_logs(self, destination: Path) -> None:
        """Copy the node's logs to `destination`."""
        if self.logs_dir.exists():
            shutil.copytree(self.logs_dir, destination, dirs_exist_ok=True)

    # -- pieces ------------------------------------------------------------------------------

    def _mark(self, step: str, began: float) -> None:
        self.timings[step] = round(time.monotonic() - began, 2)

    def _write_record(self, record: Record) -> None:
        RECORD_DIR.mkdir(exist_ok=True)
        temporary = self._record_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(dataclasses.asdict(record)))
        temporary.replace(self._record_path)
        self._record = record

    def _spawn_raw(self, name: str, argv: list[str], namespaces: tuple[str, ...] = ()) -> ChildProcess:
        """Start `argv` in the ground's network namespace (and `namespaces`, nsenter's options)."""
        log_path = self.logs_dir / f"real-node-{name}.log"
        command = ["nsenter", f"--net=/run/netns/{self.netns}", *namespaces, "--", *argv]
        process = ChildProcess(name, command, log_path, env={"PATH": self.binaries.path_variable})
        process.start()
        return process

    def _spawn(self, name: str, argv: list[str]) -> ChildProcess:
        """Start `argv` in the ground's network namespace and the node's mount namespace."""
        holder = self._holder.pid if self._holder is not None else None
        if holder is None:
            raise RuntimeError("the node's mount namespace is not made")
        process = self._spawn_raw(name, argv, namespaces=(f"--mount=/proc/{holder}/ns/mnt",))
        self._components.append(process)
        return process

    def _in_netns(self, argv: list[str]) -> None:
        _run(["ip", "netns", "exec", self.netns, *argv])

    def _containerd_ready(self, containerd: ChildProcess) -> bool:
        if containerd.exited() is not None:
            raise RuntimeError(f"containerd exited:\n{containerd.log_tail()}")
        result = subprocess.run([str(self.binaries.containerd / "ctr"), "--address", self.containerd_address,
                                 "version"], capture_output=True, timeout=10)  # fmt: skip
        return result.returncode == 0

    def _alive_and(self, condition: Callable[[], bool]) -> bool:
        for component in self._components:
            if component.exited() is not None:
                raise NodeFailed(f"{component.name} exited:\n{component.log_tail()}")
        return condition()

    def _ready(self, api: client.CoreV1Api) -> bool:
        self._alive_and(lambda: True)
        node = api.read_node(REAL_NODE)
        ready = [c for c in node.status.conditions or [] if c.type == "Ready"]
        gpus = (node.status.allocatable or {}).get(GPU_RESOURCE)
        return bool(ready and ready[0].status == "True" and gpus == str(FAKE_GPUS))

    def _api_port(self) -> int:
        server = yaml.safe_load(self.admin_kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        return int(server.rsplit(":", 1)[1])

    def _write_node_kubeconfig(self, port: int) -> None:
        kubeconfig = yaml.safe_load(self.admin_kubeconfig.read_text())
        kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
        (self.workdir / "node.kubeconfig").write_text(yaml.safe_dump(kubeconfig))

    def _node_object(self) -> dict[str, Any]:
        # Made before the kubelet registers, for the pod CIDR outside the controller manager's range.
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": REAL_NODE, "labels": {"kubernetes.io/hostname": REAL_NODE, "type": "real"}},
            "spec": {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr], "taints": [REAL_NODE_TAINT]},
        }

    def _write_configs(self, cgroup_root: str) -> None:
        work = self.workdir
        for directory in ("cni-conf", "containerd/root", "containerd/state", "kubelet", "pod-logs"):
            (work / directory).mkdir(parents=True, exist_ok=True)
        runc = work / "runc"
        runc.write_text(wrapper_script(self.binaries.runc / "runc"))
        runc.chmod(0o755)
        (work / "containerd.toml").write_text(_containerd_config(work, runc, self.binaries.cni))
        network = ipaddress.ip_network(self.pod_cidr)
        cni = {
            "cniVersion": "1.0.0",
            "name": "testground",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": str(network)}]],
                             "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(work / "cni-ipam")},
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }  # fmt: skip
        (work / "cni-conf" / "10-testground.conflist").write_text(json.dumps(cni, indent=1))
        kubelet = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": cgroup_root,
            "containerRuntimeEndpoint": f"unix://{self.containerd_address}",
            "address": self.plan.node_ip,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "podLogsDir": str(work / "pod-logs"),
            "failSwapOn": False,
            "resolvConf": "",
            "maxPods": 20,
            "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "shutdownGracePeriod": "0s",
            "localStorageCapacityIsolation": False,
            "nodeStatusUpdateFrequency": "2s",
        }  # fmt: skip
        (work / "kubelet.yaml").write_text(yaml.safe_dump(kubelet))
        proxy = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "iptables",
            "clientConnection": {"kubeconfig": str(work / "node.kubeconfig")},
            "hostnameOverride": REAL_NODE,
            "bindAddress": "127.0.0.1",
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
            "clusterCIDR": self.pod_cidr,
            # Conntrack's table size and timeouts are host-wide: leave them alone.
            "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
            "iptables": {"syncPeriod": "30s", "minSyncPeriod": "0s"},
        }
        (work / "kube-proxy.yaml").write_text(yaml.safe_dump(proxy))


def _containerd_config(work: Path, runc: Path, cni: Path) -> str:
    return f"""\
version = 2
root = "{work / "containerd/root"}"
state = "{work / "containerd/state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "{work / "containerd.sock"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{work / "containerd/opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This machine's root lacks CAP_SYS_RESOURCE: runc may not lower a score it cannot raise back.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc behind runc_mounts: an engine image's host directories mounted into its containers.
        BinaryName = "{runc}"
        Root = "/run/turnout-runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}"
    conf_dir = "{work / "cni-conf"}"
"""


def undo(record: Record) -> None:
    """Undo what the node of `record` changed: its processes, cgroups, bridge, iptables, route, sysctls."""
    for _ in range(3):  # a process may fork while we kill: go round until none is left
        pids = _node_pids(record)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda killed=pids: not (_node_pids(record) & killed), timeout=10, what="the node's processes gone")
    for hierarchy in _cgroup_hierarchies():
        _remove_cgroup_tree(hierarchy / record.cgroup_root.lstrip("/"))
    netns = f"/run/netns/{record.netns}"
    if Path(netns).exists():
        subprocess.run(["ip", "-n", record.netns, "link", "delete", BRIDGE], capture_output=True)
        subprocess.run(["ip", "-n", record.netns, "route", "delete", record.service_cidr, "dev", "lo"],
                       capture_output=True)  # fmt: skip
        subprocess.run(["ip", "-n", record.netns, "addr", "delete", f"{record.node_ip}/32", "dev", "lo"],
                       capture_output=True)  # fmt: skip
        for command in ("iptables", "ip6tables"):
            for table in ("filter", "nat", "mangle", "raw"):
                # The namespace is the ground's, with no rules of its own: every chain there is the node's.
                binary = str(Path(record.iptables) / command)
                for flag in ("-F", "-X"):
                    subprocess.run(
                        ["ip", "netns", "exec", record.netns, binary, "-t", table, flag], capture_output=True
                    )
    subprocess.run(["ip", "route", "delete", record.host_route], capture_output=True)
    for name, value in record.sysctls.items():
        if _sysctl(name) != value:
            _run(["sysctl", "-qw", f"{name}={value}"])


def leftovers(record: Record) -> list[str]:
    """What of the node of `record` is still there (processes, cgroups, routes, links, addresses,
    iptables chains, mounts, files, changed sysctls), one line each; empty once it is all undone."""
    found = [f"process {pid}" for pid in sorted(_node_pids(record))]
    found += [f"cgroup {h / record.cgroup_root.lstrip('/')}" for h in _cgroup_hierarchies()
              if (h / record.cgroup_root.lstrip("/")).exists()]  # fmt: skip
    routes = subprocess.run(["ip", "route", "show", record.host_route], capture_output=True, text=True).stdout
    found += [f"host route {line}" for line in routes.splitlines()]
    if Path(f"/run/netns/{record.netns}").exists():
        inside = ["ip", "netns", "exec", record.netns]
        links = subprocess.run(["ip", "-n", record.netns, "-o", "link"], capture_output=True, text=True).stdout
        found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines()
                  if "veth" in line or BRIDGE in line]  # fmt: skip
        addresses = subprocess.run(["ip", "-n", record.netns, "-o", "addr", "show", "dev", "lo"],
                                   capture_output=True, text=True).stdout  # fmt: skip
        found += [f"address {record.node_ip} on lo" for line in addresses.splitlines() if f" {record.node_ip}/" in line]
        service_routes = subprocess.run(["ip", "-n", record.netns, "route", "show", record.service_cidr],
                                        capture_output=True, text=True).stdout  # fmt: skip
        found += [f"route in {record.netns}: {line}" for line in service_routes.splitlines()]
        for command in ("iptables-save", "ip6tables-save"):
            rules = subprocess.run([*inside, str(Path(record.iptables) / command)], capture_output=True, text=True)
            found += [f"{command}: {line}" for line in rules.stdout.splitlines() if line.startswith((":KUBE", ":CNI"))]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    found += [f"mount {line.split()[4]}" for line in mounts if record.workdir in line.split()[4]]
    found += [f"sysctl {name}={_sysctl(name)}, was {value}" for name, value in record.sysctls.items()
              if _sysctl(name) != value]  # fmt: skip
    if Path(record.workdir).exists():
        found.append(f"directory {record.workdir}")
    if (RECORD_DIR / f"{record.netns}.json").exists():
        found.append(f"record {RECORD_DIR / f'{record.netns}.json'}")
    return found


def reap_stale_real_nodes() -> list[str]:
    """Undo what real nodes of test processes that died without stopping left; return their namespaces."""
    reaped = []
    for path in sorted(RECORD_DIR.glob("*.json")) if RECORD_DIR.exists() else []:
        record = Record.load(path)
        if process_alive(record.owner):
            continue
        undo(record)
        _remove_workdir(Path(record.workdir))
        path.unlink(missing_ok=True)
        reaped.append(record.netns)
    return reaped


def host_state(iptables: Path) -> dict[str, Any]:
    """What a real node could leave behind on the host, to compare before and after: links, routes,
    mounts, iptables rules, cgroups under the root, the kubelet's sysctls."""

    def out(argv: list[str]) -> list[str]:
        return sorted(subprocess.run(argv, capture_output=True, text=True).stdout.splitlines())

    rules = [line for line in out([str(iptables / "iptables-save")]) if not line.startswith("#")]
    return {
        "links": [line.split("@")[0] for line in out(["ip", "-o", "link", "show"])],
        "routes": out(["ip", "route", "show", "table", "all"]),
        "mounts": sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()),
        "iptables": rules,
        "cgroups": sorted(str(p) for h in _cgroup_hierarchies() for p in h.glob("turnout-*")),
        "sysctls": {name: _sysctl(name) for name in KUBELET_SYSCTLS},
        "records": sorted(p.name for p in RECORD_DIR.glob("*.json")) if RECORD_DIR.exists() else [],
        "paths": [path for path in _RUNTIME_PATHS if Path(path).exists()],
    }


# -- host helpers -----------------------------------------------------------------------------


class _Forwarder:
    """TCP from the namespace's 127.0.0.1:`port` to the host's 127.0.0.1:`target` (the API server)."""

    def __init__(self, netns: str, target: int) -> None:
        self.netns = netns
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        self._listener = socket_in_netns(self.netns)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.5)
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, name="real-node-forwarder", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                inner, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                inner.close()
                continue
            outer.settimeout(None)
            for source, sink in ((inner, outer), (outer, inner)):
                threading.Thread(target=_pump, args=(source, sink, self._stopped), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket, stopped: threading.Event) -> None:
    source.settimeout(1.0)
    try:
        while not stopped.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            source.close()


def socket_in_netns(netns: str) -> socket.socket:
    """A TCP socket made in network namespace `netns` (a socket keeps the namespace it was made in):
    for a client there, of a ClusterIP say, from this process."""
    made: list[socket.socket] = []

    def make() -> None:
        # setns changes only this thread's namespace; the thread ends right after.
        with open(f"/run/netns/{netns}") as target:
            if ctypes.CDLL(None, use_errno=True).setns(target.fileno(), _CLONE_NEWNET) != 0:
                return
        made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if not made:
        raise RuntimeError(f"could not make a socket in {netns}")
    return made[0]


def _node_pids(record: Record) -> set[int]:
    """Processes of the node: in its mount namespace (containerd, shims, kubelet, ...) or its cgroups (containers)."""
    pids: set[int] = set()
    own_mounts = os.stat("/proc/self/ns/mnt").st_ino
    try:
        network = os.stat(f"/run/netns/{record.netns}").st_ino
    except FileNotFoundError:
        network = 0
    # Both namespaces must match, and the mount namespace must not be ours (a record is never trusted
    # to name the host's): containerd, its shims, kubelet, kube-proxy, the device plugin.
    if record.mount_namespace and record.mount_namespace != own_mounts and network:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if (os.stat(entry / "ns" / "mnt").st_ino == record.mount_namespace
                            and os.stat(entry / "ns" / "net").st_ino == network):  # fmt: skip
                        pids.add(int(entry.name))
    for hierarchy in _cgroup_hierarchies():
        root = hierarchy / record.cgroup_root.lstrip("/")
        for procs in root.rglob("cgroup.procs") if root.exists() else []:
            with contextlib.suppress(OSError):
                pids.update(int(line) for line in procs.read_text().split())
    pids.discard(os.getpid())
    return pids


def _cgroup_hierarchies() -> list[Path]:
    hierarchies = []
    for line in Path(_CGROUP_MOUNTS).read_text().splitlines():
        fields = line.split()
        if fields[2] in ("cgroup", "cgroup2"):
            hierarchies.append(Path(fields[1]))
    return hierarchies


def _remove_cgroup_tree(root: Path) -> None:
    if not root.exists():
        return
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            directory.rmdir()
    wait_for(lambda: _rmdir(root), timeout=10, what=f"cgroup {root} removed")


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _remove_workdir(workdir: Path) -> None:
    # Mounts under it (the kubelet's volumes) lived in the node's mount namespace, gone with its processes.
    shutil.rmtree(workdir, ignore_errors=True)


def _mounted_tmpfs(pid: int, path: str) -> bool:
    mounts = Path(f"/proc/{pid}/mounts").read_text().splitlines()
    return os.stat(f"/proc/{pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino and any(
        line.split()[:2] == ["tmpfs", path] for line in mounts
    )


def _sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
