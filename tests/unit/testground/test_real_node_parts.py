"""The real node's pure parts: image layouts, the engine's command line read as a pod, addresses, and
the guard that keeps a node's cleanup away from every process that is not the node's."""

from __future__ import annotations

import gzip
import hashlib
import io
import ipaddress
import json
import os
import tarfile
from pathlib import Path

import pytest

from testground.engine_process import container_pod
from testground.images import Layer, write_image_archive
from testground.podnet import PodNetworkPlan
from testground.podspec import pod_shutdown, pod_sim
from testground.realnode import Record, _node_pids, node_pod_cidr


def test_image_archive_is_an_oci_layout_whose_digests_match(tmp_path: Path) -> None:
    layer = Layer({"bin/tool": (b"#!/bin/sh\n", 0o755)}, {"lib": "usr/lib"})
    archive = write_image_archive(tmp_path / "image.tar", "docker.io/example/tool:1", layer, ["/bin/tool"], ["A=b"])
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}

    def blob(descriptor: dict[str, object]) -> bytes:
        content = files[f"blobs/sha256/{str(descriptor['digest']).removeprefix('sha256:')}"]
        assert "sha256:" + hashlib.sha256(content).hexdigest() == descriptor["digest"]
        assert len(content) == descriptor["size"]
        return content

    (entry,) = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "docker.io/example/tool:1"
    manifest = json.loads(blob(entry))
    config = json.loads(blob(manifest["config"]))
    assert config["config"]["Entrypoint"] == ["/bin/tool"]
    (layer_descriptor,) = manifest["layers"]
    raw = gzip.decompress(blob(layer_descriptor))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(raw).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/tool"].mode == 0o755
    assert members["lib"].issym() and members["lib"].linkname == "usr/lib"  # noqa: PT018


def test_layer_bytes_depend_only_on_the_tree() -> None:
    def tree() -> Layer:
        return Layer({"b": (b"2", 0o644), "a/x": (b"1", 0o644)}, {"c": "a"})

    assert tree().tar() == tree().tar()


def test_engine_process_reads_its_command_line_as_the_supervisor_reads_a_pod() -> None:
    argv = ["serve", "tiny", "--served-model-name=chat", "--port=8000", "--shutdown-timeout=10"]
    pod = container_pod("vllm", argv, {"VLLM_API_KEY": "k", "SIM_BEHAVIOUR": "slow-start:4", "SIM_LATENCY": "1"})
    sim = pod_sim(pod)
    assert sim is not None
    assert (sim.host, sim.port, sim.models, sim.api_key) == ("0.0.0.0", 8000, ("chat",), "k")
    assert sim.behaviour.seconds == 4
    assert sim.degradation.latency_seconds == 1
    assert pod_shutdown(pod).drain == 10


@pytest.mark.parametrize(("slot", "cidr"), [(0, "10.245.1.0/24"), (1, "10.247.1.0/24"), (3, "10.251.1.0/24")])
def test_real_node_pods_sit_beside_the_node_address_outside_the_pod_cidr(slot: int, cidr: str) -> None:
    plan = PodNetworkPlan.for_slot(slot)
    assert node_pod_cidr(plan) == cidr
    assert not ipaddress.ip_network(cidr).overlaps(ipaddress.ip_network(plan.pod_cidr))


def test_cleanup_never_takes_processes_of_the_host_mount_namespace(tmp_path: Path) -> None:
    # A record naming our own mount namespace (a node whose namespace was never made) matches nothing.
    record = Record(
        owner=1, netns="absent", workdir=str(tmp_path), cgroup_root="/turnout-absent", host_route="10.0.0.0/24",
        sysctls={}, iptables=str(tmp_path), node_ip="10.0.0.1", service_cidr="10.1.0.0/16",
        mount_namespace=os.stat("/proc/self/ns/mnt").st_ino,
    )  # fmt: skip
    assert _node_pids(record) == set()


@pytest.mark.parametrize("root", ["", "/", "/system.slice", "/turnout-x/../..", "turnout-x"])
def test_a_record_whose_cgroup_root_is_not_the_nodes_own_is_refused(tmp_path: Path, root: str) -> None:
    # Undo kills every process in the cgroups under the root: "/" would be every process of the host.
    with pytest.raises(ValueError, match="cgroup root"):
        Record(
            owner=1, netns="absent", workdir=str(tmp_path), cgroup_root=root, host_route="10.0.0.0/24",
            sysctls={}, iptables=str(tmp_path), node_ip="10.0.0.1", service_cidr="10.1.0.0/16",
        )  # fmt: skip
