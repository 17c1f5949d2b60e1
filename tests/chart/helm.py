"""Running the pinned helm on the chart, and picking objects out of what it renders."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testground.binaries import ensure_helm, pinned_versions

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "turnout"
RELEASE = "turnout"
NAMESPACE = "turnout-system"
# Objects are validated against the schema of the pinned control plane's minor version.
KUBERNETES_VERSION = pinned_versions()["KUBERNETES_VERSION"]
KUBERNETES_MINOR = KUBERNETES_VERSION.lstrip("v").rsplit(".", 1)[0]


def needed(found: Path | None, message: str) -> Path:
    """`found`, or stop the test: in CI (CI set) a missing tool is a failure, elsewhere a skip."""
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def pinned_helm() -> Path:
    """$HELM, or the helm pinned in hack/versions.env, built by hack/build-binaries.sh on first use (minutes, once)."""
    if os.environ.get("HELM"):
        return Path(os.environ["HELM"])
    return ensure_helm()


class HelmFailed(Exception):
    """helm exited non-zero; the message is what it printed on stderr."""


def run_helm(helm: Path, *arguments: str) -> str:
    """Run helm and return its stdout; raise HelmFailed with its stderr when it fails."""
    result = subprocess.run([str(helm), *arguments], capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise HelmFailed(result.stderr.strip() or result.stdout.strip())
    return result.stdout


def template(helm: Path, values_file: Path | None = None, *extra: str) -> list[dict[str, Any]]:
    """`helm template` of the chart as the release `turnout` in `turnout-system`, parsed into objects."""
    arguments = [
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBERNETES_VERSION,
        *extra,
    ]
    if values_file is not None:
        arguments += ["--values", str(values_file)]
    return [obj for obj in yaml.safe_load_all(run_helm(helm, *arguments)) if obj]


def find(objects: list[dict[str, Any]], kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """The objects of `kind` (in `namespace`, when given)."""
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (namespace is None or obj["metadata"].get("namespace") == namespace)
    ]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The one object of `kind`; fails when there are none or several."""
    found = find(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {[obj['metadata']['name'] for obj in found]}"
    return found[0]
