"""A real vLLM in the real node's containers: the image turnout pins, with vLLM's CPU build inside.

`vllm_images` writes the archives of two images for `RealNode.import_images`:

- ``vllm/vllm-openai:<turnout's pinned tag>``: its ``vllm`` command is `vllm_command`, which
  runs the pod's rendered ``vllm serve MODEL ARG...`` with vLLM's own ``vllm`` from the cached
  virtualenv (`hack/vllm-venv.sh`, the version turnout pins), every argument as rendered, the model
  alone mapped to the tiny Llama (`tiny_model`) and served under the name the pod asked for. Nothing
  is copied: the virtualenv, its Python, the model and this code are mounted read-only by the node's
  runc (`runc_mounts`, env ``TESTGROUND_HOST_MOUNTS``). The image's env is a CPU image's: vLLM's
  target is the CPU, its KV cache 1 GiB (``VLLM_CPU_KVCACHE_SPACE``; unset, vLLM would take a share
  of the machine's memory), one process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``: the CPU build's
  multiprocess executor wants more ``/dev/shm`` than a container has), the hub offline.
- `BAKED_NAME_IMAGE`: the same, but the image appends ``--served-model-name baked-name`` to whatever
  it is given, as images that bake their own arguments in do. vLLM keeps the last value of a flag, so
  it serves ``baked-name`` whatever the spec says: the revision a check must stop before the switch.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from testground.binaries import cache_dir
from testground.images import IMAGE_ENV, MERGED_USR, Layer, host_mounts, write_image_archive
from testground.runc_mounts import MOUNTS_VARIABLE
from testground.vllm_command import ARGS_VARIABLE, MODEL_VARIABLE, VLLM_VARIABLE
from turnout.engines.vllm import VllmProfile

VLLM_IMAGE = f"docker.io/{VllmProfile.image}"  # containerd's name for the short one turnout renders
BAKED_NAME_IMAGE = "turnout.dev/testground/vllm-baked-name:1"
BAKED_NAME = "baked-name"
# hidden 256, 2 layers, 4 heads, 2000 words: ~5 MB of weights, nonsense answers; up to 4096 positions.
SHAPE = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "head_dim": 64,
    "vocab_size": 2000,
}
KV_CACHE_GIB = 1
_MAKER = Path(__file__).with_name("tiny_llama.py")


def tiny_model(vllm_python: str) -> Path:
    """The tiny Llama (`SHAPE`, tiny_llama.py), made once by vLLM's python and cached by what makes it."""
    digest = hashlib.sha256(_MAKER.read_bytes() + json.dumps(SHAPE, sort_keys=True).encode()).hexdigest()[:12]
    directory = cache_dir() / "models" / f"tiny-llama-{digest}"
    if (directory / "config.json").exists():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    with (directory.parent / f"{directory.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / "config.json").exists():
            partial = directory.with_name(f"{directory.name}.partial-{os.getpid()}")
            done = subprocess.run(
                [vllm_python, str(_MAKER)],
                input=json.dumps({"directory": str(partial), "shape": SHAPE}),
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if done.returncode != 0:
                shutil.rmtree(partial, ignore_errors=True)
                raise RuntimeError(f"tiny_llama.py failed in vLLM's virtualenv:\n{done.stderr[-4000:]}")
            partial.rename(directory)
    return directory


def vllm_images(directory: Path, vllm_python: str, model: Path) -> list[Path]:
    """The archives of `VLLM_IMAGE` and `BAKED_NAME_IMAGE` in `directory`, running vLLM of the virtualenv
    whose python is `vllm_python` on `model`."""
    venv = Path(vllm_python).parent.parent
    script = b'#!/bin/sh\nexec "$TESTGROUND_PYTHON" -m testground.vllm_command "$@"\n'
    layer = Layer({"testground/bin/vllm": (script, 0o755), "tmp/.keep": (b"", 0o644)}, MERGED_USR)
    mounts = [*host_mounts(), str(venv), str(_base_prefix(venv)), str(model)]
    env = [
        *IMAGE_ENV,
        f"{MOUNTS_VARIABLE}={':'.join(dict.fromkeys(mounts))}",
        f"{VLLM_VARIABLE}={venv / 'bin' / 'vllm'}",
        f"{MODEL_VARIABLE}={model}",
        "VLLM_TARGET_DEVICE=cpu",
        f"VLLM_CPU_KVCACHE_SPACE={KV_CACHE_GIB}",
        # One process: with the engine core in processes of its own, the CPU build always runs the
        # multiprocess executor, whose message queues want 400 MiB of /dev/shm where a container has
        # 64 MiB (on GPUs one worker needs none, and turnout mounts a larger one for tensor parallelism).
        "VLLM_ENABLE_V1_MULTIPROCESSING=0",
        "HF_HUB_OFFLINE=1",
    ]
    entry = ["/testground/bin/vllm"]
    return [
        write_image_archive(directory / "vllm-real.tar", VLLM_IMAGE, layer, entry, env),
        write_image_archive(
            directory / "vllm-baked-name.tar",
            BAKED_NAME_IMAGE,
            layer,
            entry,
            [*env, f"{ARGS_VARIABLE}=--served-model-name {BAKED_NAME}"],
        ),
    ]


def _base_prefix(venv: Path) -> Path:
    """The Python installation a virtualenv was made from (``home`` in its pyvenv.cfg is its bin directory)."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).parent
    raise ValueError(f"{venv}/pyvenv.cfg names no home")
