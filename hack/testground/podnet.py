"""The pod network: a network namespace that owns the pod CIDR, reachable from the host.

kwok hands out pod IPs from ``pod_cidr``; the host routes that CIDR over a veth pair into the
namespace, where the whole CIDR is local, so a simulator started there can bind any pod IP
and the API server (on the host) reaches it. The Service CIDR gets an ``unreachable`` route on
the host: nothing in the test ground may send a ClusterIP packet anywhere else.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
from dataclasses import dataclass, field

_LINK_PREFIX = 30
SLOTS = 4  # test grounds that can run side by side on one host, each with its own addresses


class NetworkTaken(RuntimeError):
    """Another test ground on this host already routes these addresses."""


@dataclass(frozen=True)
class PodNetworkPlan:
    """Addresses of the test ground's network; every one stays on this host.

    Slot 0 is the usual 10.244.0.0/16 pods, 10.96.0.0/16 Services; slot k shifts each range
    so that k test grounds can run at once.
    """

    pod_cidr: str = "10.244.0.0/16"
    node_ip: str = "10.245.0.1"  # kwok's node address: also local in the namespace
    service_cidr: str = "10.96.0.0/16"  # guarded on the host by an unreachable route
    # The veth pair's /30: link-local, so these addresses can never leave this host.
    host_link_ip: str = "169.254.244.1"
    netns_link_ip: str = "169.254.244.2"
    slot: int | None = 0  # None: addresses of the caller's choosing, not one of the slots

    @classmethod
    def for_slot(cls, slot: int) -> PodNetworkPlan:
        """The plan of slot ``slot`` (0 to SLOTS - 1)."""
        if not 0 <= slot < SLOTS:
            raise ValueError(f"slot must be in 0..{SLOTS - 1}")
        return cls(
            pod_cidr=f"10.{244 + 2 * slot}.0.0/16",
            node_ip=f"10.{245 + 2 * slot}.0.1",
            service_cidr=f"10.{96 + slot}.0.0/16",
            host_link_ip=f"169.254.244.{4 * slot + 1}",
            netns_link_ip=f"169.254.244.{4 * slot + 2}",
            slot=slot,
        )

    @property
    def kubernetes_service_ip(self) -> str:
        """The first Service IP, which the API server takes for itself."""
        return str(next(ipaddress.ip_network(self.service_cidr).hosts()))

    def owned_prefixes(self) -> list[str]:
        """Prefixes routed into the namespace and local there."""
        return [self.pod_cidr, f"{self.node_ip}/32"]


@dataclass
class PodNetwork:
    """A network namespace with a veth pair to the host; ``start`` builds it, ``stop`` removes all."""

    plan: PodNetworkPlan = field(default_factory=PodNetworkPlan)
    netns: str = ""  # default: turnout-<slot>-<our pid>-<random>, see reap_stale_networks
    _undo: list[list[str]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.netns:
            slot = "x" if self.plan.slot is None else str(self.plan.slot)
            self.netns = f"turnout-{slot}-{os.getpid()}-{secrets.token_hex(1)}"

    @property
    def host_veth(self) -> str:
        """Host-side veth name (at most 15 characters, as the kernel demands)."""
        return "tnh" + self.netns.removeprefix("turnout-")

    @property
    def netns_veth(self) -> str:
        """Namespace-side veth name."""
        return "tnn" + self.netns.removeprefix("turnout-")

    def start(self) -> None:
        """Create the namespace, the veth pair, the routes and the Service CIDR guard."""
        try:
            self._build()
        except BaseException:
            self.stop()
            raise

    def _build(self) -> None:
        ns, host, peer = self.netns, self.host_veth, self.netns_veth
        host_ip, ns_ip = self.plan.host_link_ip, self.plan.netns_link_ip
        # The guard first: it is the cheapest way to find the slot taken by another test ground.
        guard = self.plan.service_cidr
        self._step(
            ["ip", "route", "add", "unreachable", guard],
            undo=["ip", "route", "delete", "unreachable", guard],
            taken=f"{guard} is already routed on this host: is another test ground running?",
        )
        self._step(["ip", "netns", "add", ns], undo=["ip", "netns", "delete", ns])
        self._step(
            ["ip", "link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns],
            undo=["ip", "link", "delete", host],
        )
        self._step(["ip", "addr", "add", f"{host_ip}/{_LINK_PREFIX}", "dev", host])
        self._step(["ip", "link", "set", host, "up"])
        self._step(["ip", "-n", ns, "addr", "add", f"{ns_ip}/{_LINK_PREFIX}", "dev", peer])
        self._step(["ip", "-n", ns, "link", "set", peer, "up"])
        self._step(["ip", "-n", ns, "link", "set", "lo", "up"])
        for prefix in self.plan.owned_prefixes():
            self._step(["ip", "-n", ns, "route", "add", "local", prefix, "dev", "lo"])
            self._step(
                ["ip", "route", "add", prefix, "via", ns_ip, "dev", host, "src", host_ip],
                undo=["ip", "route", "delete", prefix, "via", ns_ip, "dev", host],
                taken=f"{prefix} is already routed on this host: is another test ground running?",
            )

    def stop(self) -> None:
        """Remove routes, veth pair and namespace, newest first; safe to call twice."""
        while self._undo:
            subprocess.run(self._undo.pop(), capture_output=True)

    def _step(self, argv: list[str], undo: list[str] | None = None, taken: str | None = None) -> None:
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            if taken and "File exists" in result.stderr:
                raise NetworkTaken(taken)
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")
        if undo:
            self._undo.append(undo)


_OWNED_NETNS = re.compile(r"turnout-(?P<slot>\d|x)-(?P<pid>\d+)-[0-9a-f]{2}")


def reap_stale_networks() -> list[str]:
    """Remove the pod networks of test grounds that died without stopping (killed, say).

    A network is stale when the process that made it is gone and no process runs inside it.
    Deleting the namespace takes the veth pair and its routes along; the slot's Service CIDR
    guard is deleted here. Returns the names of the namespaces removed.
    """
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    reaped = []
    for line in listing.splitlines():
        match = _OWNED_NETNS.fullmatch(line.split(" ")[0])
        if not match or process_alive(int(match["pid"])):
            continue
        name = match.group(0)
        inside = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
        if inside.strip():
            continue
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        if match["slot"] != "x":
            guard = PodNetworkPlan.for_slot(int(match["slot"])).service_cidr
            subprocess.run(["ip", "route", "delete", "unreachable", guard], capture_output=True)
        reaped.append(name)
    return reaped


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists (of another user too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
