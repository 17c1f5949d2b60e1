"""Where a vLLM model's files lie on the model claim, and what they say about its size. Pure.

turnout cannot read a claim itself: a short-lived inspector pod (`render/inspector.py`) mounts it
read-only and serves the model's directory over HTTP, and `kube/model_files.py` reads the files named
here from it. The facts are those `model.architecture` declares (`config.json`), and the weights'
size from the checkpoint itself (`metadata.total_size` of the safetensors index, or the size of a
single `model.safetensors`), which also holds for quantized checkpoints.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any

CONFIG_FILE = "config.json"
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
"""Sharded checkpoints: each index's `metadata.total_size` is the weights' bytes."""
SINGLE_FILE = "model.safetensors"
"""An unsharded checkpoint: its size is the weights' bytes (plus a header of kilobytes)."""
HUB_REF = "refs/main"
"""In a hub cache's model directory: the commit whose snapshot `vllm serve <org/name>` loads."""

MAX_CONFIG_BYTES = 1024 * 1024
"""A config.json is a few kilobytes; a larger answer is refused, not read."""
MAX_INDEX_BYTES = 32 * 1024 * 1024
"""A safetensors index names every tensor: about 100 KiB for a 70B model, megabytes for the largest."""
MAX_REF_BYTES = 1024

# The spec's bounds on model.architecture: the facts read are held to the same.
_BOUNDS = {"parameters": 100_000_000_000_000, "layers": 10_000, "kv_heads": 10_000, "head_dim": 100_000}
_MAX_VOCAB = 100_000_000
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9_.-]{1,96}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# What config.json's `torch_dtype` (`dtype` in newer transformers) says a weight takes, in bytes.
_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2}


@dataclass(frozen=True)
class ModelDirectory:
    """The model's directory in the engine's container, on the claim."""

    path: str
    """What the inspector serves: the model's own directory, or its hub cache directory."""
    hub: bool
    """A Hugging Face hub cache directory (`models--org--name`): the files are in `snapshots/<commit>/`,
    the commit in `refs/main`."""


@dataclass(frozen=True)
class ModelFacts:
    """What the model's files say about its size: `model.architecture`'s facts, and the weights' bytes."""

    parameters: int
    layers: int
    kv_heads: int
    head_dim: int
    vocab_size: int | None
    checkpoint_bytes: int
    """The weights' bytes in the checkpoint (all shards)."""
    quantization: str | None
    """`quantization_config.quant_method` (awq, gptq, fp8, ...): vLLM holds the weights as stored."""

    def describe(self) -> str:
        """In words, for the status: `8.03B parameters, 32 layers, 8 KV heads of 128, vocabulary 128256`."""
        words = [
            f"{self.parameters / 1e9:.2f}B parameters" if not self.quantization else f"{self.quantization} weights",
            f"{self.checkpoint_bytes / 1024**3:.1f} GiB of weights",
            f"{self.layers} layers",
            f"{self.kv_heads} KV heads of {self.head_dim}",
        ]
        if self.vocab_size is not None:
            words.append(f"vocabulary {self.vocab_size}")
        return ", ".join(words)


def hf_home(mount_path: str) -> str:
    """Where vLLM's image keeps the Hugging Face cache (HF_HOME): on the model volume."""
    return f"{mount_path.rstrip('/')}/huggingface"


def model_directory(model: str, mount_path: str) -> ModelDirectory | str:
    """Where `model` (`vllm serve`'s model: a path, or a hub id cached under `hf_home`) lies on the claim
    mounted at `mount_path`; or why its files cannot be read from the claim."""
    mount = posixpath.normpath(mount_path)
    if model.startswith("/"):
        path = posixpath.normpath(model)
        if path != mount and not path.startswith(mount.rstrip("/") + "/"):
            return f"the model path {model} is not on the model claim (mounted at {mount_path})"
        return ModelDirectory(path, hub=False)
    if _HUB_ID.fullmatch(model) and ".." not in model:
        return ModelDirectory(f"{hf_home(mount_path)}/hub/models--{model.replace('/', '--')}", hub=True)
    return f"{model} is neither a path on the model claim nor a Hugging Face hub id (org/name)"


def snapshot_prefix(ref: bytes) -> str:
    """The path of the snapshot a hub cache's `refs/main` names, e.g. `snapshots/<commit>/`; raises
    `ValueError` when the file holds no commit."""
    commit = ref.decode("ascii", errors="replace").strip()
    if not _COMMIT.fullmatch(commit):
        raise ValueError(f"{HUB_REF} holds no commit hash")
    return f"snapshots/{commit}/"


def index_total_size(index: bytes) -> int:
    """`metadata.total_size` of a checkpoint index, in bytes; raises `ValueError` saying what is wrong."""
    found = _json_object(index, "the checkpoint index").get("metadata")
    total = found.get("total_size") if isinstance(found, dict) else None
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        raise ValueError("the checkpoint index has no metadata.total_size")
    return total


def config_facts(config: bytes, checkpoint_bytes: int) -> ModelFacts:
    """The size facts of a model from its `config.json` and the bytes of its weights; raises `ValueError`
    with the message the user reads (which key is missing or out of range).

    Multimodal configs keep the language model's facts in `text_config`. Without `head_dim`, a head is
    `hidden_size / num_attention_heads`; without `num_key_value_heads`, every head has its own keys and
    values. The parameters are the weights' bytes over the checkpoint's dtype (`torch_dtype`, 16-bit when
    unsaid); a quantized checkpoint keeps its bytes, and its parameter count is not known from them.
    """
    top = _json_object(config, CONFIG_FILE)
    text = top.get("text_config")
    facts = text if isinstance(text, dict) and "num_hidden_layers" not in top else top
    layers = _first(facts, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(facts, "num_attention_heads", "n_head")
    if layers is None:
        raise ValueError(f"{CONFIG_FILE} has no num_hidden_layers")
    if heads is None:
        raise ValueError(f"{CONFIG_FILE} has no num_attention_heads")
    kv_heads = _first(facts, "num_key_value_heads")
    if kv_heads is None:
        kv_heads = heads
    head_dim = _first(facts, "head_dim")
    if head_dim is None:
        hidden = _first(facts, "hidden_size", "n_embd", "d_model")
        if hidden is None:
            raise ValueError(f"{CONFIG_FILE} has neither head_dim nor hidden_size")
        head_dim = hidden // heads
    vocab = _first(facts, "vocab_size")
    if vocab is None:
        vocab = _first(top, "vocab_size")
    quantization = _quantization(top)
    dtype = str(top.get("torch_dtype") or top.get("dtype") or facts.get("torch_dtype") or "bfloat16")
    parameters = checkpoint_bytes // _DTYPE_BYTES.get(dtype, 2)
    found = {"parameters": parameters, "layers": layers, "kv_heads": kv_heads, "head_dim": head_dim}
    for name, value in found.items():
        if not 1 <= value <= _BOUNDS[name]:
            raise ValueError(f"{CONFIG_FILE} gives {name} {value}, outside 1 to {_BOUNDS[name]}")
    if vocab is not None and not 1 <= vocab <= _MAX_VOCAB:
        raise ValueError(f"{CONFIG_FILE} gives vocab_size {vocab}, outside 1 to {_MAX_VOCAB}")
    return ModelFacts(parameters, layers, kv_heads, head_dim, vocab, checkpoint_bytes, quantization)


def _json_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        found = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{what} is not JSON") from None
    if not isinstance(found, dict):
        raise ValueError(f"{what} is not a JSON object")
    return found


def _first(facts: dict[str, Any], *keys: str) -> int | None:
    """The first of `keys` that `facts` has as a whole number; raises `ValueError` for one of another kind."""
    for key in keys:
        value = facts.get(key)
        if value is None:
            continue
        if not _whole(value):
            raise ValueError(f"{CONFIG_FILE} gives {key} {str(value)[:40]!r}, not a whole number")
        return int(value)
    return None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _quantization(config: dict[str, Any]) -> str | None:
    found = config.get("quantization_config")
    if not isinstance(found, dict):
        return None
    method = found.get("quant_method")
    return str(method)[:40] if isinstance(method, str) and method else "quantized"


__all__ = [
    "CONFIG_FILE",
    "HUB_REF",
    "INDEX_FILES",
    "MAX_CONFIG_BYTES",
    "MAX_INDEX_BYTES",
    "MAX_REF_BYTES",
    "SINGLE_FILE",
    "ModelDirectory",
    "ModelFacts",
    "config_facts",
    "hf_home",
    "index_total_size",
    "model_directory",
    "snapshot_prefix",
]
