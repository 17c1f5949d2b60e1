"""What the selected tests need, prepared once after collection and before the first test.

`hack/test` with no arguments prepares everything up front. Otherwise (`hack/test -m "not e2e"`,
`pytest tests/chart`, ...) only what the selected tests use is prepared, outside any test's timeout,
and each step is instant once its cache is warm:
  - the local test ground (`kube_cluster`): the control plane's binaries (~20 min on a cold cache);
  - `helm` (chart tests, the chart's e2e test): helm (a few minutes on a cold cache);
  - `gateway_api_crds` (HTTPRoute e2e tests): the Gateway API's CRD files (a download of a few MB);
  - `prometheus` (canary e2e tests of `analysis.metrics`): Prometheus, from Debian's package (~20 MB);
  - `real_node` (tests marked realnode): kubelet, kube-proxy, CNI plugins (minutes on a cold cache),
    Debian's containerd, runc and iptables (~30 MB);
  - the engine tests: vLLM's virtualenv (~5 min, 6 GB), only with TURNOUT_REQUIRE_ENGINE_TESTS=1;
    without it they skip and say how to run them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from testground.binaries import (
    ensure_binaries,
    ensure_gateway_api_crds,
    ensure_helm,
    ensure_node_binaries,
    ensure_prometheus,
)
from testground.pytest_fixtures import EXTERNAL_VARIABLE

REPO = Path(__file__).resolve().parents[1]
VLLM_VENV = REPO / "hack" / "vllm-venv.sh"
REQUIRE_ENGINE_TESTS = "TURNOUT_REQUIRE_ENGINE_TESTS"
RUN_ENGINE_TESTS = f"{REQUIRE_ENGINE_TESTS}=1 hack/test tests/engine"


def engine_tests_required() -> bool:
    """Whether an engine test that cannot run fails (CI, plain `hack/test`) instead of skipping."""
    return os.environ.get(REQUIRE_ENGINE_TESTS) == "1"


def vllm_python(*, install: bool) -> str | None:
    """The python of vLLM's cached virtualenv; when absent, None, or with `install` hack/vllm-venv.sh creates it."""
    command = [str(VLLM_VENV)] if install else [str(VLLM_VENV), "--path"]
    found = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def needed_vllm_python() -> str:
    """The python of vLLM's cached virtualenv; installed first when the engine tests are required, else skip."""
    required = engine_tests_required()
    python = vllm_python(install=required)
    if python is not None:
        return python
    if required:
        pytest.fail(f"vLLM's virtualenv could not be created by hack/vllm-venv.sh ({REQUIRE_ENGINE_TESTS}=1)")
    pytest.skip(f"vLLM's virtualenv is absent; `{RUN_ENGINE_TESTS}` creates it (about 5 minutes, 6 GB) and runs these")


def run_in_vllm(script: Path, payload: object) -> str:
    """What `script` prints, run by vLLM's python with `payload` as JSON on its stdin; fails with its stderr."""
    done = subprocess.run(
        [needed_vllm_python(), str(script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "VLLM_TARGET_DEVICE": "cpu"},
    )
    assert done.returncode == 0, f"{script.name} failed in vLLM's virtualenv:\n{done.stderr[-4000:]}"
    return done.stdout


def prepare_for(items: Sequence[pytest.Item]) -> None:
    """Build or install what `items` need; a step that fails ends the session with its reason."""
    steps: dict[str, Callable[[], object]] = {}
    for item in items:
        if "kube_cluster" in item.fixturenames and os.environ.get(EXTERNAL_VARIABLE) != "1":
            steps["the control plane's binaries (hack/build-binaries.sh kube etcd kwok)"] = ensure_binaries
        if "helm" in item.fixturenames and not os.environ.get("HELM"):
            steps["helm (hack/build-binaries.sh helm)"] = ensure_helm
        if "gateway_api_crds" in item.fixturenames:
            steps["the Gateway API CRDs (hack/build-binaries.sh gateway-api)"] = ensure_gateway_api_crds
        if "prometheus" in item.fixturenames:
            steps["Prometheus (hack/build-binaries.sh prometheus)"] = ensure_prometheus
        if "real_node" in item.fixturenames and os.environ.get(EXTERNAL_VARIABLE) != "1":
            steps["the real node's binaries (hack/build-binaries.sh node)"] = ensure_node_binaries
        if item.get_closest_marker("engine") and engine_tests_required():
            steps["vLLM's virtualenv (hack/vllm-venv.sh)"] = lambda: vllm_python(install=True)
    for what, step in steps.items():
        began = time.monotonic()
        try:
            ready = step()
        except subprocess.CalledProcessError:
            ready = None
        if not ready:
            pytest.exit(f"could not prepare {what} for the selected tests; its output is above", returncode=1)
        # A cold build's cost shows here (a warm cache: well under a second).
        print(f"\nprepared {what} in {time.monotonic() - began:.1f} s")
