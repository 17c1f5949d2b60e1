"""Container images built on this machine, no registry: an OCI image layout written by hand (tar,
gzip, JSON) and imported into the real node's containerd with ``ctr images import``.

- the pause image: the static `pause` binary (hack/testground/pause), the sandbox of every pod;
- the engine images, tagged with the names turnout renders (``vllm/vllm-openai``, ``ollama/ollama``,
  and Ollama's pinned tag):
  one small layer with a ``vllm`` and an ``ollama`` command that run `testground.engine_process`
  with this machine's Python. Python, its packages and the test ground's code are not copied: the
  image's env ``TESTGROUND_HOST_MOUNTS`` names them (`host_mounts`, and ``/usr`` for libc and a
  shell), and the node's runc (`runc_mounts`) mounts them read-only at the same paths, so the pods
  are the ones turnout renders, with nothing added.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testground.runc_mounts import MOUNTS_VARIABLE
from turnout.engines.ollama import OllamaProfile

PAUSE_IMAGE = "turnout.dev/testground/pause:1"
# containerd's names for the short ones turnout renders: the simulators' own tags, and Ollama's pinned
# one (Ollama cannot run here, so its image is the simulator; vLLM's pinned one is a real vLLM: real_vllm).
ENGINE_IMAGES = (
    "docker.io/vllm/vllm-openai:testground",
    "docker.io/ollama/ollama:testground",
    f"docker.io/{OllamaProfile.image}",
)
_TESTGROUND_DIR = Path(__file__).resolve().parent
# Debian's merged /usr: the mounted /usr brings the shell, libc and the loader.
MERGED_USR = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"}
# The env of an image whose commands run the test ground's code with this machine's Python.
IMAGE_ENV = (
    "PATH=/testground/bin:/usr/local/bin:/usr/bin:/bin",
    f"TESTGROUND_PYTHON={sys.executable}",
    f"PYTHONPATH={_TESTGROUND_DIR.parent}",
    "PYTHONUNBUFFERED=1",
)
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Layer:
    """A file tree: regular files (path -> (content, mode)) and symlinks (path -> target)."""

    files: dict[str, tuple[bytes, int]]
    symlinks: dict[str, str]

    def tar(self) -> bytes:
        """The layer as an uncompressed tar, members sorted, times zero: the same tree gives the same bytes."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            directories = sorted({str(Path(p).parent) for p in [*self.files, *self.symlinks]} - {"."})
            for directory in _with_parents(directories):
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            for path, (content, mode) in sorted(self.files.items()):
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(content), mode
                archive.addfile(info, io.BytesIO(content))
            for path, target in sorted(self.symlinks.items()):
                info = tarfile.TarInfo(path)
                info.type, info.linkname = tarfile.SYMTYPE, target
                archive.addfile(info)
        return buffer.getvalue()


def write_image_archive(
    destination: Path, name: str, layer: Layer, entrypoint: list[str], env: list[str], cmd: list[str] | None = None
) -> Path:
    """Write image `name` (one layer) as an OCI image layout in a tar archive at `destination`."""
    blobs: dict[str, bytes] = {}

    def blob(content: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        blobs[digest] = content
        return {"digest": digest, "size": len(content)}

    raw = layer.tar()
    compressed = gzip.compress(raw, mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Cmd": cmd or [], "Env": env, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]},
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": _OCI_MANIFEST,
        "config": {"mediaType": _OCI_CONFIG, **blob(_json(config))},
        "layers": [{"mediaType": _OCI_LAYER, **blob(compressed)}],
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": _OCI_MANIFEST,
                **blob(_json(manifest)),
                "platform": {"architecture": "amd64", "os": "linux"},
                # ctr names the imported image after this annotation.
                "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
            }
        ],
    }
    with tarfile.open(destination, "w") as archive:
        entries = {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": _json(index)}
        entries |= {f"blobs/sha256/{digest.removeprefix('sha256:')}": content for digest, content in blobs.items()}
        for path, content in entries.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return destination


def pause_image(directory: Path, pause_binary: Path) -> Path:
    """The pause image's archive in `directory`."""
    layer = Layer({"pause": (pause_binary.read_bytes(), 0o755)}, {})
    return write_image_archive(directory / "pause.tar", PAUSE_IMAGE, layer, ["/pause"], [])


def engine_images(directory: Path) -> list[Path]:
    """The engine images' archives in `directory`: both names, one layer."""
    script = engine_command_script()
    commands = {"testground/bin/vllm": (script, 0o755), "testground/bin/ollama": (script, 0o755)}
    # /tmp: turnout's Ollama script marks the model ready with a file there.
    layer = Layer({**commands, "tmp/.keep": (b"", 0o644)}, MERGED_USR)
    env = [*IMAGE_ENV, f"{MOUNTS_VARIABLE}={':'.join(host_mounts())}"]
    archives = []
    for index, name in enumerate(ENGINE_IMAGES):
        engine = name.split("/")[-1].split(":")[0]
        entry = ["/testground/bin/" + ("vllm" if engine == "vllm-openai" else "ollama")]
        file = directory / f"engine-{index}.tar"
        archives.append(write_image_archive(file, name, layer, entry, env, cmd=[] if engine != "ollama" else ["serve"]))
    return archives


def engine_command_script() -> bytes:
    """The engine images' ``vllm`` and ``ollama``: `testground.engine_process` for the engine of its name."""
    return b'#!/bin/sh\nexec "$TESTGROUND_PYTHON" -m testground.engine_process "$(basename "$0")" "$@"\n'


def host_mounts() -> list[str]:
    """Host directories an engine container needs, read-only at the same path: /usr, this Python's
    installation and environment, and the test ground's code."""
    paths = {"/usr", sys.base_prefix, sys.prefix, str(_TESTGROUND_DIR.parent)}
    return sorted(paths)


def import_images(ctr: Path, address: str, archives: list[Path]) -> None:
    """Import `archives` into containerd's `k8s.io` namespace (the kubelet's), unpacked for the native snapshotter."""
    for archive in archives:
        subprocess.run(
            [
                str(ctr),
                "--address",
                address,
                "-n",
                "k8s.io",
                "images",
                "import",
                "--snapshotter",
                "native",
                str(archive),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _with_parents(directories: list[str]) -> list[str]:
    every = set()
    for directory in directories:
        path = Path(directory)
        every.update(str(p) for p in [path, *path.parents] if str(p) != ".")
    return sorted(every)
