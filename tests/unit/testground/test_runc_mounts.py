"""The real node's runc wrapper: which calls it touches, and the mounts it adds to a container's spec."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testground.runc_mounts import MOUNTS_VARIABLE, bundle_of, subcommand, with_host_mounts, wrapper_script


def _spec(env: list[str], mounts: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {"process": {"args": ["vllm", "serve"], "env": env}, "mounts": mounts or [{"destination": "/proc"}]}


def test_the_subcommand_is_found_after_runc_s_global_options() -> None:
    args = ["--root", "/run/r", "--log", "/x/log.json", "--log-format", "json", "create", "--bundle", "/b", "id"]
    assert subcommand(args) == ("create", ["--bundle", "/b", "id"])
    assert subcommand(["--systemd-cgroup", "state", "id"]) == ("state", ["id"])
    assert subcommand(["--debug"]) == (None, [])


def test_the_bundle_is_read_in_each_spelling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert bundle_of(["--bundle", "/b", "id"]) == Path("/b")
    assert bundle_of(["-b", "/b", "id"]) == Path("/b")
    assert bundle_of(["--bundle=/b", "id"]) == Path("/b")
    monkeypatch.chdir(tmp_path)
    assert bundle_of(["id"]) == tmp_path


def test_requested_host_directories_are_mounted_read_only_at_the_same_path(tmp_path: Path) -> None:
    present, absent = tmp_path / "venv", tmp_path / "gone"
    present.mkdir()
    spec = _spec(["PATH=/bin", f"{MOUNTS_VARIABLE}={present}:{absent}:relative:{present}"])
    changed = with_host_mounts(spec)
    assert changed is not None
    assert changed["mounts"] == [
        {"destination": "/proc"},
        {
            "destination": str(present),
            "type": "bind",
            "source": str(present),
            "options": ["rbind", "ro", "nosuid", "nodev"],
        },
    ]


def test_a_container_that_asks_nothing_is_left_as_it_is(tmp_path: Path) -> None:
    assert with_host_mounts(_spec(["PATH=/bin"])) is None
    # A path the pod mounts itself is the pod's.
    spec = _spec([f"{MOUNTS_VARIABLE}={tmp_path}"], mounts=[{"destination": str(tmp_path), "type": "bind"}])
    changed = with_host_mounts(spec)
    assert changed is not None
    assert changed["mounts"] == spec["mounts"]


def test_the_wrapper_edits_a_create_s_bundle_then_runs_runc_with_the_same_arguments(tmp_path: Path) -> None:
    bundle, wanted = tmp_path / "bundle", tmp_path / "code"
    bundle.mkdir()
    wanted.mkdir()
    (bundle / "config.json").write_text(json.dumps(_spec([f"{MOUNTS_VARIABLE}={wanted}"])))
    # A stand-in runc that prints the arguments it was given.
    runc = tmp_path / "runc"
    runc.write_text('#!/bin/sh\necho "$@"\n')
    runc.chmod(0o755)
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(wrapper_script(runc))
    wrapper.chmod(0o755)
    state = subprocess.run([str(wrapper), "--root", "/r", "state", "id"], capture_output=True, text=True, check=True)
    assert state.stdout.strip() == "--root /r state id"
    assert json.loads((bundle / "config.json").read_text())["mounts"] == [{"destination": "/proc"}]
    create = [str(wrapper), "--root", "/r", "create", "--bundle", str(bundle), "id"]
    done = subprocess.run(create, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"--root /r create --bundle {bundle} id"
    mounts = json.loads((bundle / "config.json").read_text())["mounts"]
    assert [m["destination"] for m in mounts] == ["/proc", str(wanted)]
