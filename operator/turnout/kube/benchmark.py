"""Run `rollout.benchmark`: the same load to one Ready pod of the new revision, then to one of the
serving revision, never both at once. The I/O edge of the benchmark gate; the verdict is `plan`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from kubernetes.client.exceptions import ApiException

from turnout.api.backend import Backend
from turnout.api.benchmark import BenchmarkResult
from turnout.api.spec import Benchmark
from turnout.api.status import InferenceBackendStatus
from turnout.benchmark.load import LoadPlan, run_load
from turnout.benchmark.prompts import ChatRequest, PromptsError, built_in_requests, parse_jsonl
from turnout.engines.container import PORT_NAME
from turnout.kube.cluster import ClusterApi, KubeObject, in_thread
from turnout.kube.observe import ApiKeyUnusable, RoundSkipped, check_targets, read_api_key
from turnout.rollout.observed import BenchmarkRun


async def run_benchmark(
    cluster: ClusterApi, backend: Backend, status: InferenceBackendStatus, pods: Sequence[KubeObject]
) -> BenchmarkRun | None:
    """The benchmark of the preview's revision against the serving one; None when the API server
    could not give what it needs now (the next reconcile tries again)."""
    spec = backend.spec.rollout.benchmark
    preview = status.preview_color
    assert spec is not None, "benchmarked only when rollout.benchmark is set"
    assert preview is not None, "benchmarked only while a revision is being proven"
    try:
        prompts = await read_prompts(cluster, backend, spec)
        api_key = await read_api_key(cluster, backend)
    except (PromptsError, ApiKeyUnusable) as unusable:
        return BenchmarkRun(None, None, str(unusable))
    except RoundSkipped:
        return None
    new_pods = check_targets(pods, preview, backend.revision, backend.engine_port)
    if not new_pods:
        return BenchmarkRun(None, None, f"no Ready pod of {preview} to benchmark")
    url = f"http://{new_pods[0].ip}:{new_pods[0].port}/v1"
    new = await run_load(LoadPlan.from_spec(spec, url, backend.served_name, prompts, api_key))
    old: BenchmarkResult | None = None
    active, serving = status.active_color, status.active_revision
    if active is not None and serving is not None:
        # The serving revision may run another engine, on another port: the pod says which.
        for pod in pods:
            port = _engine_port(pod)
            targets = check_targets([pod], active, serving, port) if port else []
            if targets:
                url = f"http://{targets[0].ip}:{targets[0].port}/v1"
                old = await run_load(LoadPlan.from_spec(spec, url, backend.served_name, prompts, api_key))
                break
    return BenchmarkRun(new, old)


async def read_prompts(cluster: ClusterApi, backend: Backend, spec: Benchmark) -> list[ChatRequest]:
    """The benchmark's chat requests: the built-in prompts, or the JSONL in the ConfigMap key the spec
    names. Raises `PromptsError` saying what is wrong and where."""
    ref = spec.prompts.config_map_key_ref
    if ref is None:
        return built_in_requests()
    where = f"ConfigMap {ref.name}, key {ref.key} (rollout.benchmark.prompts)"
    try:
        text = await in_thread(partial(cluster.read_config_map_key, backend.namespace, ref.name, ref.key))
    except ApiException as error:
        if error.status == 404:
            raise PromptsError(f"{where} does not exist in namespace {backend.namespace}") from None
        if error.status == 403:
            raise PromptsError(f"cannot read {where}: forbidden: grant get on configmaps to turnout") from None
        raise
    if text is None:
        raise PromptsError(f"{where}: the ConfigMap has no such key")
    return parse_jsonl(text, where)


def _engine_port(pod: Mapping[str, Any]) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == PORT_NAME:
                return int(port["containerPort"])
    return None
