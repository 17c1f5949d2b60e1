"""Fake nodes shaped like a small GPU cluster, managed by kwok."""

from __future__ import annotations

from typing import Any

from kubernetes import client

GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")  # kwok manages nodes that carry it

GPUS_PER_NODE = 8
GPU_NODES = ("gpu-node-0", "gpu-node-1")
CPU_NODES = ("cpu-node-0",)
# The real node (realnode.py), when a test asks for it: only pods that tolerate its taint land there.
REAL_NODE = "real-node-0"
REAL_NODE_TAINT = {"key": "turnout.dev/real-node", "value": "present", "effect": "NoSchedule"}


def build_gpu_node(
    name: str,
    gpus: int = GPUS_PER_NODE,
    *,
    product: str = "NVIDIA-H100-80GB-HBM3",
    memory_mib: int = 81559,
    instance_type: str = "p5.48xlarge",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A node like an 8-way H100 machine (by default) with the NVIDIA device plugin and GPU feature
    discovery, whose `nvidia.com/gpu.memory` label is the MiB of one GPU (an L4: 23034)."""
    labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.memory": str(memory_mib),
        "node.kubernetes.io/instance-type": instance_type,
        **(labels or {}),
    }
    resources = {"cpu": "192", "memory": "2048Gi", "pods": "110", "ephemeral-storage": "3000Gi",
                 GPU_RESOURCE: str(gpus)}  # fmt: skip
    return _build_node(name, labels, resources, taints=[GPU_TAINT])


def build_cpu_node(name: str) -> dict[str, Any]:
    """A plain CPU node, where Ollama without GPUs and small workloads land."""
    labels = {"node.kubernetes.io/instance-type": "m6i.8xlarge"}
    resources = {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"}
    return _build_node(name, labels, resources, taints=[])


def _build_node(
    name: str, labels: dict[str, str], resources: dict[str, str], taints: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                **labels,
            },
        },
        "spec": {"taints": taints},
        "status": {"capacity": resources, "allocatable": resources},
    }


def create_fake_nodes(api: client.CoreV1Api) -> list[str]:
    """Create the two GPU nodes and the CPU node; return their names."""
    nodes = [build_gpu_node(name) for name in GPU_NODES] + [build_cpu_node(name) for name in CPU_NODES]
    for node in nodes:
        api.create_node(body=node)  # type: ignore[arg-type]  # the client takes plain dicts too
    return [node["metadata"]["name"] for node in nodes]
