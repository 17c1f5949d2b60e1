"""A real vLLM in the real node's containers: the image turnout pins, with vLLM's CPU build inside.

`vllm_images` writes the archives of two images for `RealNode.import_images`:

- ``vllm/vllm-openai:<turnout's pinned tag>``: its ``vllm`` command is this module's `main`, which
  runs the pod's rendered ``vllm serve MODEL ARG...`` with vLLM's own ``vllm`` from the cached
  virtualenv (`hack/vllm-venv.sh`, the version turnout pins), every argument as rendered, the model
  alone mapped to the tiny Llama (`tiny_model`) and served under the name the pod asked for. Nothing
  is copied: the virtualenv, its Python, the model and this code are mounted read-only by the node's
  runc (`runc_mounts`, env ``TESTGROUND_HOST_MOUNTS``). The image's env is a CPU image's: vLLM's
  target is the CPU, its KV cache 1 GiB (``VLLM_CPU_KVCACHE_SPACE``; unset, vLLM would take a share
  of the machine's memory), the hub offline.
- `BAKED_NAME_IMAGE`: the same, but the image appends ``--served-model-name baked-name`` to whatever
  it is given, as images that bake their own arguments in do. vLLM keeps the last value of a flag, so
  it serves ``baked-name`` whatever the spec says: the revision a check must stop before the switch.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from testground.binaries import cache_dir
from testground.images import IMAGE_ENV, MERGED_USR, Layer, host_mounts, write_image_archive
from testground.runc_mounts import MOUNTS_VARIABLE
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
_ARGS_VARIABLE = "TESTGROUND_VLLM_ARGS"  # words the image appends, space-separated
_VLLM_VARIABLE = "TESTGROUND_VLLM"  # the virtualenv's vllm
_MODEL_VARIABLE = "TESTGROUND_TINY_MODEL"


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
                raise RuntimeError(f"tiny_llama.py failed in vLLM's virtualenv:\n{done.stderr[-4000:]}")
            partial.rename(directory)
    return directory


def vllm_images(directory: Path, vllm_python: str, model: Path) -> list[Path]:
    """The archives of `VLLM_IMAGE` and `BAKED_NAME_IMAGE` in `directory`, running vLLM of the virtualenv
    whose python is `vllm_python` on `model`."""
    venv = Path(vllm_python).parent.parent
    script = b'#!/bin/sh\nexec "$TESTGROUND_PYTHON" -m testground.real_vllm "$@"\n'
    layer = Layer({"testground/bin/vllm": (script, 0o755), "tmp/.keep": (b"", 0o644)}, MERGED_USR)
    mounts = [*host_mounts(), str(venv), str(_base_prefix(venv)), str(model)]
    env = [
        *IMAGE_ENV,
        f"{MOUNTS_VARIABLE}={':'.join(dict.fromkeys(mounts))}",
        f"{_VLLM_VARIABLE}={venv / 'bin' / 'vllm'}",
        f"{_MODEL_VARIABLE}={model}",
        "VLLM_TARGET_DEVICE=cpu",
        f"VLLM_CPU_KVCACHE_SPACE={KV_CACHE_GIB}",
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
            [*env, f"{_ARGS_VARIABLE}=--served-model-name {BAKED_NAME}"],
        ),
    ]


def serve_argv(argv: list[str], model: str, appended: list[str]) -> list[str]:
    """The arguments of the virtualenv's ``vllm`` for the container's `argv`: for ``serve``, the model
    (the first positional word, or ``--model``) replaced by `model`, served under the name the pod gave
    (``--served-model-name`` if given, else the model it named), then `appended`; anything else as it is."""
    if not argv or argv[0] != "serve":
        return argv
    rest, named = list(argv[1:]), None
    if rest and not rest[0].startswith("-"):
        named = rest.pop(0)
    else:
        for index, word in enumerate(rest):
            if word == "--model" and index + 1 < len(rest):
                named = rest[index + 1]
                del rest[index : index + 2]
                break
            if word.startswith("--model="):
                named = word.split("=", 1)[1]
                del rest[index]
                break
    served = any(word == "--served-model-name" or word.startswith("--served-model-name=") for word in rest)
    names = [] if served or named is None else ["--served-model-name", named]
    return ["serve", model, *rest, *names, *appended]


def _base_prefix(venv: Path) -> Path:
    """The Python installation a virtualenv was made from (``home`` in its pyvenv.cfg is its bin directory)."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            return Path(value.strip()).parent
    raise ValueError(f"{venv}/pyvenv.cfg names no home")


def main() -> None:
    """The image's ``vllm``: exec the virtualenv's with `serve_argv`, without the test ground's variables."""
    environ = dict(os.environ)
    vllm, model = environ.pop(_VLLM_VARIABLE), environ.pop(_MODEL_VARIABLE)
    appended = environ.pop(_ARGS_VARIABLE, "").split()
    for name in [name for name in environ if name.startswith("TESTGROUND_")] + ["PYTHONPATH"]:
        environ.pop(name, None)
    argv = serve_argv(sys.argv[1:], model, appended)
    print(f"testground: vllm {' '.join(argv)}", file=sys.stderr, flush=True)
    os.execve(vllm, ["vllm", *argv], environ)


if __name__ == "__main__":
    main()
