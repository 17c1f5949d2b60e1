"""The real node's runc: runc itself, plus read-only bind mounts an image asks for of this machine.

containerd runs this (through a shell wrapper, `wrapper_script`) wherever it would run runc. For
``runc create`` and ``runc run`` it reads the bundle's OCI spec (``config.json``) first: when the
container's environment holds ``TESTGROUND_HOST_MOUNTS=/a:/b`` (the test ground's engine images put
it in their config), each of those host directories is bind-mounted read-only at the same path in
the container. The pod spec stays as turnout rendered it; the image, not the pod, says what it needs
of the host (Python, the code, vLLM's virtualenv, the tiny model), as NVIDIA's container runtime
adds a GPU's driver files to a container. Every other call goes to runc untouched.

Standard library only, and run with ``python -I -S``: it is on the path of every container start.
Usage: python -I -S runc_mounts.py REAL_RUNC RUNC_ARG...
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

MOUNTS_VARIABLE = "TESTGROUND_HOST_MOUNTS"
# runc's global options that take a value: the subcommand is the first word that is not one of them
# or their value.
_GLOBAL_VALUED = frozenset({"--root", "--log", "--log-format", "--criu", "--rootless"})
_CREATES = frozenset({"create", "run"})


def subcommand(args: list[str]) -> tuple[str | None, list[str]]:
    """runc's subcommand in `args` and the words after it."""
    index = 0
    while index < len(args):
        word = args[index]
        if word.startswith("-"):
            index += 2 if word in _GLOBAL_VALUED else 1
            continue
        return word, args[index + 1 :]
    return None, []


def bundle_of(rest: list[str]) -> Path:
    """The bundle directory of a create: ``--bundle DIR``, ``-b DIR``, ``--bundle=DIR``; else the current one."""
    for index, word in enumerate(rest):
        if word in ("--bundle", "-b") and index + 1 < len(rest):
            return Path(rest[index + 1])
        if word.startswith("--bundle="):
            return Path(word.split("=", 1)[1])
    return Path.cwd()


def requested_mounts(spec: dict[str, Any]) -> list[str]:
    """The host directories the container's environment asks for, absolute paths only, in order, once each."""
    for entry in spec.get("process", {}).get("env", []):
        name, _, value = entry.partition("=")
        if name == MOUNTS_VARIABLE:
            paths = [path for path in value.split(":") if path.startswith("/")]
            return list(dict.fromkeys(paths))
    return []


def with_host_mounts(spec: dict[str, Any]) -> dict[str, Any] | None:
    """`spec` with a read-only bind mount of each requested directory that exists; None when nothing is asked."""
    paths = [path for path in requested_mounts(spec) if os.path.isdir(path)]
    if not paths:
        return None
    taken = {mount.get("destination") for mount in spec.get("mounts", [])}
    added = [
        {"destination": path, "type": "bind", "source": path, "options": ["rbind", "ro", "nosuid", "nodev"]}
        for path in paths
        if path not in taken
    ]
    return {**spec, "mounts": [*spec.get("mounts", []), *added]}


def prepare(args: list[str]) -> None:
    """Add the requested mounts to the bundle's spec if `args` creates a container."""
    command, rest = subcommand(args)
    if command not in _CREATES:
        return
    config = bundle_of(rest) / "config.json"
    spec = json.loads(config.read_text())
    changed = with_host_mounts(spec)
    if changed is None:
        return
    partial = config.with_name(config.name + ".testground")
    partial.write_text(json.dumps(changed))
    partial.replace(config)


def wrapper_script(runc: Path) -> str:
    """The shell script containerd runs as runc (its ``BinaryName``): this module, then runc."""
    return f'#!/bin/sh\nexec "{sys.executable}" -I -S "{Path(__file__).resolve()}" "{runc}" "$@"\n'


def main(argv: list[str]) -> None:
    runc, args = argv[1], argv[2:]
    try:
        prepare(args)
    except (OSError, ValueError) as error:  # runc then fails or runs as it would have: say why
        print(f"runc_mounts: {error}", file=sys.stderr)
    os.execv(runc, [runc, *args])


if __name__ == "__main__":
    main(sys.argv)
