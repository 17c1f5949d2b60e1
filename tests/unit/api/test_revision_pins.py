"""The revision of existing backends must not change when turnout is upgraded.

A revision is the hash of what shapes the pods; the operator starts a cutover whenever it differs
from `status.activeRevision`. If a refactor changes how it is computed, every backend in every
cluster would cut over on the upgrade. These pins say so: a failure here means an upgrade starts
a cutover for such backends. Change a pin only on purpose, and say so in the release notes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout.api.backend import Backend

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

PINNED_EXAMPLES = {
    "ollama-cpu": "88e3a950ae",
    "vllm-single-gpu": "953f7976f6",
    "vllm-tp2-api-key": "37b7078c2d",
    "vllm-to-ollama-fallback": "3f9a657588",
    "ollama-to-vllm-canary": "9b439b90ed",
    "embeddings-ollama-to-vllm": "237415b11e",
}

PINNED_SPECS: dict[str, tuple[dict[str, Any], str]] = {
    "vllm defaults": ({"engine": "vllm", "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"}}, "d8b80835ec"),
    "vllm tuned": (
        {
            "engine": "vllm",
            "model": {"name": "Qwen/Qwen2.5-7B", "servedName": "chat", "storage": {"create": True}},
            "resources": {"gpus": 4, "cpu": "8", "memory": "64Gi"},
            "vllm": {
                "tensorParallelSize": 2,
                "gpuMemoryUtilization": 0.85,
                "maxModelLen": 4096,
                "dtype": "bfloat16",
                "apiKeySecretRef": {"name": "key", "key": "token"},
                "extraArgs": ["--enable-prefix-caching", "--max-num-seqs=64"],
            },
            "ollama": {"model": "qwen2.5:7b", "numParallel": 8},
        },
        "2fa85cc5f4",
    ),
    "ollama defaults": ({"engine": "ollama", "model": {"name": "llama3:8b"}}, "560bbd5b3b"),
    "vllm drained": (
        {
            "engine": "vllm",
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
            "template": {"drain": {"preStopSeconds": 5, "gracePeriodSeconds": 300}},
        },
        "3a83cbe9ef",
    ),
    "ollama drained": (
        {"engine": "ollama", "model": {"name": "llama3:8b"}, "template": {"drain": {"preStopSeconds": 180}}},
        "1449840c97",
    ),
    "ollama tuned": (
        {
            "engine": "ollama",
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "chat"},
            "ollama": {"model": "llama3.1:8b", "keepAlive": "-1", "numParallel": 2, "contextLength": 8192},
            "vllm": {"maxModelLen": 4096},
            "resources": {"gpus": 1},
            "template": {
                "image": "ollama/ollama:0.12.6",
                "nodeSelector": {"pool": "gpu"},
                "env": [{"name": "TZ", "value": "UTC"}],
                "podLabels": {"team": "ml"},
            },
        },
        "0c3ebda4ad",
    ),
}


def example_backend(name: str) -> Backend:
    for document in yaml.safe_load_all((EXAMPLES / f"{name}.yaml").read_text()):
        if document and document.get("kind") == "InferenceBackend":
            meta = document["metadata"]
            return Backend.parse(meta["name"], meta.get("namespace", "default"), document["spec"])
    raise AssertionError(f"examples/{name}.yaml has no InferenceBackend")


def test_every_example_is_pinned() -> None:
    assert sorted(PINNED_EXAMPLES) == sorted(path.stem for path in EXAMPLES.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(PINNED_EXAMPLES))
def test_example_revision_is_unchanged(name: str) -> None:
    revision = example_backend(name).revision
    assert revision == PINNED_EXAMPLES[name], (
        f"examples/{name}.yaml now has revision {revision}, was {PINNED_EXAMPLES[name]}: upgrading the operator "
        "would start a cutover of every such backend"
    )


@pytest.mark.parametrize("name", sorted(PINNED_SPECS))
def test_spec_revision_is_unchanged(name: str) -> None:
    spec, pinned = PINNED_SPECS[name]
    revision = Backend.parse("chat", "ml", spec).revision
    assert revision == pinned, (
        f"{name}: revision {revision}, was {pinned}: upgrading the operator would start a cutover of such backends"
    )


def test_the_api_keys_digest_is_part_of_the_revision_only_when_there_is_one() -> None:
    keyed = PINNED_SPECS["vllm tuned"][0]
    backend = Backend.parse("chat", "ml", keyed)
    assert backend.revision == PINNED_SPECS["vllm tuned"][1]  # no digest: as before
    one = replace(backend, api_key_digest="sha256:0123456789abcdef")
    two = replace(backend, api_key_digest="sha256:fedcba9876543210")
    assert len({backend.revision, one.revision, two.revision}) == 3
    assert replace(backend, api_key_digest="sha256:0123456789abcdef").revision == one.revision
