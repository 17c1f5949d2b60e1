"""Locate the pinned control-plane binaries, helm, Prometheus and the Gateway API CRDs, fetching them with
hack/build-binaries.sh if missing."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

HACK_DIR = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = HACK_DIR / "build-binaries.sh"
VERSIONS_FILE = HACK_DIR / "versions.env"


@dataclass(frozen=True)
class Binaries:
    """Directories holding the pinned binaries, one per component."""

    kube: Path  # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
    etcd: Path
    kwok: Path  # kwok, kwokctl

    def path(self, name: str) -> Path:
        """Return the path of one binary by its file name, e.g. ``kube-apiserver``."""
        for directory in (self.kube, self.etcd, self.kwok):
            candidate = directory / name
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{name} is in none of {self.kube}, {self.etcd}, {self.kwok}")


@dataclass(frozen=True)
class NodeBinaries:
    """Directories of the real node's binaries (``hack/build-binaries.sh node``)."""

    kube: Path  # kubelet, kube-proxy, fakegpu (the device plugin), pause
    cni: Path  # bridge, host-local, loopback, portmap
    containerd: Path  # containerd, containerd-shim-runc-v2, ctr
    runc: Path
    iptables: Path  # iptables, iptables-save, ... (wrappers around Debian's, unpacked)

    @property
    def path_variable(self) -> str:
        """A PATH on which containerd finds its shim and runc, and the kubelet and kube-proxy iptables."""
        return ":".join(str(d) for d in (self.containerd, self.runc, self.iptables)) + ":/usr/sbin:/usr/bin:/sbin:/bin"


def cache_dir() -> Path:
    """Where what the test ground builds is cached, as hack/build-binaries.sh and hack/vllm-venv.sh say:
    $TURNOUT_CACHE_DIR, else $XDG_CACHE_HOME/turnout, else ~/.cache/turnout."""
    if os.environ.get("TURNOUT_CACHE_DIR"):
        return Path(os.environ["TURNOUT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "turnout"


def pinned_versions() -> dict[str, str]:
    """Return the versions pinned in hack/versions.env, e.g. ``{"KUBERNETES_VERSION": "v1.36.3"}``."""
    versions = {}
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


def ensure_binaries() -> Binaries:
    """Build (or find in the cache) kube, etcd and kwok binaries and return their directories.

    With a warm cache this takes well under a second; a cold build takes many minutes and
    streams the script's progress to stderr.
    """
    dirs = _build("kube", "etcd", "kwok")
    return Binaries(kube=dirs["KUBE_BIN"], etcd=dirs["ETCD_BIN"], kwok=dirs["KWOK_BIN"])


def ensure_node_binaries() -> NodeBinaries:
    """Build (or find in the cache) the real node's kubelet, kube-proxy, device plugin, pause, CNI plugins,
    and unpack Debian's containerd, runc and iptables; a cold build takes minutes (the kubelet most)."""
    dirs = _build("node")
    return NodeBinaries(
        kube=dirs["NODE_KUBE_BIN"],
        cni=dirs["CNI_BIN"],
        containerd=dirs["CONTAINERD_BIN"],
        runc=dirs["RUNC_BIN"],
        iptables=dirs["IPTABLES_BIN"],
    )


def ensure_helm() -> Path:
    """Build (or find in the cache) the pinned helm and return its path; a cold build takes minutes."""
    return _build("helm")["HELM_BIN"] / "helm"


def ensure_gateway_api_crds() -> Path:
    """The directory of the pinned Gateway API release's standard-channel CRD files (one YAML file
    each), copied from its Go module on first use (a download of a few MB), then from the cache."""
    return _build("gateway-api")["GATEWAY_API_CRDS"]


def ensure_prometheus() -> Path:
    """The pinned Prometheus binary (PROMETHEUS_VERSION, Debian's package unpacked into the cache on
    first use: a download of about 20 MB), then from the cache."""
    return _build("prometheus")["PROMETHEUS_BIN"] / "prometheus"


def _build(*components: str) -> dict[str, Path]:
    """Run hack/build-binaries.sh for `components`; its progress goes to stderr. Returns NAME_BIN -> directory."""
    result = subprocess.run([str(BUILD_SCRIPT), *components], check=True, stdout=subprocess.PIPE, text=True)
    return {name: Path(path) for name, _, path in (line.partition("=") for line in result.stdout.splitlines()) if path}
