"""Read the cluster around one backend into `Observed`, running the checks `plan` asks for.

The functions that turn Kubernetes objects into observations are pure, so the rules (which
pod counts as Ready, which container state is a failure) are unit-tested on plain dicts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

import httpx
import urllib3
from kubernetes.client.exceptions import ApiException

from turnout.api.backend import Backend
from turnout.api.labels import (
    ABORT_ANNOTATION,
    BACKEND_LABEL,
    CHANGE_CAUSE_ANNOTATION,
    COLOR_LABEL,
    INSPECTS_LABEL,
    INSPECTS_MODEL_CONFIG,
    PAUSE_ANNOTATION,
    PROMOTE_ANNOTATION,
    RETRY_ANNOTATION,
    REVISION_LABEL,
)
from turnout.api.spec import Strategy
from turnout.api.status import FIRST_COLOR, Color, InferenceBackendStatus, Phase
from turnout.checks import CheckRound, CheckTarget, check_round
from turnout.checks.prometheus import QueryAnswer, query_prometheus, render_query
from turnout.checks.traffic import TrafficScrape, scrape_color
from turnout.engines.model_files import model_directory
from turnout.engines.probe import bearer_token_problem
from turnout.kube.cluster import ClusterApi, KubeObject, in_thread
from turnout.kube.model_files import read_model_files
from turnout.render import render_service
from turnout.render.deployment import deployment_name
from turnout.render.route import (
    RouteProblem,
    color_service_names,
    render_color_service,
    route_weights,
    route_with_weights,
)
from turnout.rollout.conditions import parse_time
from turnout.rollout.gpu_memory import needs_gpu_nodes
from turnout.rollout.model_config import model_files_due
from turnout.rollout.observed import (
    BenchmarkRun,
    CheckOutcome,
    ColorState,
    FailureReason,
    GpuNode,
    GpuNodes,
    InspectorPod,
    MetricReading,
    ModelFilesRead,
    Observed,
    PodFailure,
    RouteState,
    TrafficSample,
)
from turnout.rollout.plan import check_due

log = logging.getLogger("turnout")

Checker = Callable[[ClusterApi, Backend, Sequence[KubeObject], Color], Awaitable[CheckOutcome | None]]
"""One round of checks over the pods of a color, given the backend and its pods: `run_checks`, or a test's.
None when no round could be run this time: nothing is counted, and the next reconcile tries again."""

Benchmarker = Callable[
    [ClusterApi, Backend, InferenceBackendStatus, Sequence[KubeObject]], Awaitable[BenchmarkRun | None]
]
"""The benchmark of the revision being proven against the serving one (`run_benchmark`, or a test's);
None when it cannot run now and is tried again at the next reconcile."""

Scraper = Callable[[Backend, Sequence[CheckTarget]], Awaitable[TrafficScrape]]
"""What the given Ready pods of one color have served, from the engine's own metrics: `scrape_traffic`,
or a test's."""
Querier = Callable[[str, str, float], Awaitable[QueryAnswer]]
"""The number a PromQL query gives now: (Prometheus address, query, timeout in seconds) ->
`QueryAnswer`; `query_prometheus` by default."""


class ApiKeyUnusable(Exception):
    """The API key cannot be read or sent; the message says why and names the Secret, never the value."""


class RoundSkipped(Exception):
    """The API server could not answer now (throttled, overloaded, unreachable): no round this time."""


_WAITING_FAILURES = {
    "ImagePullBackOff": FailureReason.IMAGE_PULL_BACK_OFF,
    "ErrImagePull": FailureReason.IMAGE_PULL_BACK_OFF,
    "InvalidImageName": FailureReason.IMAGE_PULL_BACK_OFF,
    "CrashLoopBackOff": FailureReason.CRASH_LOOP_BACK_OFF,
    "CreateContainerConfigError": FailureReason.CREATE_CONTAINER_CONFIG_ERROR,
}


def pod_failures(pod: Mapping[str, Any]) -> list[PodFailure]:
    """What the cluster says is wrong with one pod: unschedulable, image, crash loop, OOM."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    found: list[PodFailure] = []
    for condition in status.get("conditions") or []:
        if (condition.get("type"), condition.get("status"), condition.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            since = parse_time(condition.get("lastTransitionTime"))
            found.append(PodFailure(name, FailureReason.UNSCHEDULABLE, condition.get("message", ""), since))
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        last = (container.get("lastState") or {}).get("terminated") or {}
        terminated = state.get("terminated") or {}
        if "OOMKilled" in (last.get("reason"), terminated.get("reason")):
            found.append(PodFailure(name, FailureReason.OOM_KILLED, f"container {container['name']} was OOMKilled"))
        elif waiting.get("reason") in _WAITING_FAILURES:
            reason = _WAITING_FAILURES[waiting["reason"]]
            detail = f"{waiting['reason']}: {waiting['message']}" if waiting.get("message") else waiting["reason"]
            found.append(PodFailure(name, reason, f"container {container['name']}: {detail}"))
    return found


def creation_failures(deployment: Mapping[str, Any]) -> list[PodFailure]:
    """A Deployment whose pods cannot be created (ReplicaFailure: a quota, Pod Security admission).

    The ReplicaSet reports FailedCreate; the Deployment controller copies it into its own conditions,
    and only a status that has seen the current template speaks about it.
    """
    meta, status = deployment["metadata"], deployment.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return []
    return [
        PodFailure(
            meta["name"],
            FailureReason.FAILED_CREATE,
            f"{condition.get('reason') or 'FailedCreate'}: {condition.get('message', '')}".rstrip(": "),
            kind="Deployment",
        )
        for condition in status.get("conditions") or []
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True"
    ]


def ownership_conflict(obj: Mapping[str, Any] | None, kind: str, backend: str, uid: str) -> str | None:
    """Why `obj` (which turnout would write for the backend named `backend` with `uid`) is not the
    backend's to write, or None when it is absent or the backend's own (its label and its controlling
    owner both say so)."""
    if obj is None:
        return None
    meta = obj["metadata"]
    labelled = (meta.get("labels") or {}).get(BACKEND_LABEL)
    controller = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
    if labelled == backend and controller is not None and controller.get("uid") == uid:
        return None
    if controller is not None:
        owner = f"{controller.get('kind', 'an object')} {controller.get('name', '?')}"
        if controller.get("uid") != uid and controller.get("name") == backend:
            owner += " (an earlier object of the same name)"
    elif labelled:
        owner = f"nobody, though labelled {BACKEND_LABEL}={labelled}"
    else:
        owner = "no InferenceBackend"
    return (
        f"{kind} {meta.get('name')} exists and belongs to {owner}: turnout does not take it over; "
        f"rename or delete it, or choose another name for this backend's"
    )


def service_is_current(service: Mapping[str, Any] | None, rendered: Mapping[str, Any]) -> bool:
    """The live Service has the type and ports turnout renders (the selector is the switch's business)."""
    if service is None:
        return True
    live, wanted = service.get("spec") or {}, rendered["spec"]

    def ports(spec: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        return sorted((p.get("name"), p.get("port"), str(p.get("targetPort"))) for p in spec.get("ports") or [])

    return bool(live.get("type", "ClusterIP") == wanted.get("type", "ClusterIP") and ports(live) == ports(wanted))


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    """Ready condition True and not being deleted."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def color_states(deployments: Sequence[KubeObject], pods: Sequence[KubeObject]) -> dict[Color, ColorState]:
    """Per color: its Deployment's template revision and replicas, and its pods of that revision."""
    states: dict[Color, ColorState] = {}
    for deployment in deployments:
        color = _color_of(deployment)
        if color is None:
            continue
        template_labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
        revision = template_labels.get(REVISION_LABEL)
        mine = [p for p in pods if _color_of(p) == color]
        current = [p for p in mine if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision]
        states[color] = ColorState(
            exists=True,
            revision=revision,
            replicas=int(deployment["spec"].get("replicas") or 0),
            ready=sum(1 for p in current if is_pod_ready(p)),
            pods=len(mine),
            failures=(*creation_failures(deployment), *(f for p in current for f in pod_failures(p))),
        )
    return states


def service_color(service: Mapping[str, Any] | None) -> Color | None:
    if service is None:
        return None
    selector = (service.get("spec") or {}).get("selector") or {}
    value = selector.get(COLOR_LABEL)
    return Color(value) if value in (Color.BLUE.value, Color.GREEN.value) else None


def service_splits(service: Mapping[str, Any] | None) -> bool:
    """The Service selects the pods of both colors of its backend (a canary without a mesh)."""
    if service is None:
        return False
    selector = (service.get("spec") or {}).get("selector") or {}
    return BACKEND_LABEL in selector and COLOR_LABEL not in selector


GPU_RESOURCE = "nvidia.com/gpu"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


def gpu_nodes_of(nodes: Sequence[KubeObject], node_selector: Mapping[str, str]) -> GpuNodes:
    """The nodes a backend's GPU pods can land on: `nvidia.com/gpu` in their capacity, every label of
    `template.nodeSelector`; with their GPU memory label (MiB) when it is a number.

    Taints, tolerations and affinity are not weighed: a node they rule out only makes the estimate
    judge against a GPU the pods would not get, and the largest GPU is the one judged against.
    """
    found = []
    for node in nodes:
        meta, status = node.get("metadata") or {}, node.get("status") or {}
        labels = meta.get("labels") or {}
        capacity = status.get("capacity") or {}
        if str(capacity.get(GPU_RESOURCE, "0")) in ("", "0"):
            continue
        if any(labels.get(key) != value for key, value in node_selector.items()):
            continue
        memory = str(labels.get(GPU_MEMORY_LABEL, ""))
        found.append(
            GpuNode(
                name=str(meta.get("name", "")),
                memory_mib=int(memory) if memory.isdigit() and int(memory) > 0 else None,
                product=labels.get(GPU_PRODUCT_LABEL),
            )
        )
    return GpuNodes(nodes=tuple(sorted(found, key=lambda n: n.name)))


def gpu_memory_due(backend: Backend, status: InferenceBackendStatus, read: ModelFilesRead | None = None) -> bool:
    """The spec's revision is about to get its first pods and its GPU memory estimate reads the nodes
    (with the model's facts from the spec, from the files read before, or from `read` just now)."""
    starting = status.preview_started_at is None or status.preview_revision != backend.revision
    read_now = read is not None and read.facts is not None
    return needs_gpu_nodes(backend, status, read_now) and backend.revision != status.active_revision and starting


def inspectors_of(pods: Sequence[KubeObject], backend: str, uid: str) -> tuple[InspectorPod, ...]:
    """The backend's inspector pods among `pods`: labelled as its inspectors and owned by it (a pod
    someone else labelled so is not turnout's to delete)."""
    found = []
    for pod in pods:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        if labels.get(INSPECTS_LABEL) != INSPECTS_MODEL_CONFIG or ownership_conflict(pod, "Pod", backend, uid):
            continue
        phase = (pod.get("status") or {}).get("phase")
        failures = pod_failures(pod)
        if phase in ("Failed", "Succeeded"):
            failures.append(PodFailure(meta["name"], FailureReason.CRASH_LOOP_BACK_OFF, f"its server exited ({phase})"))
        found.append(
            InspectorPod(
                name=meta["name"],
                revision=labels.get(REVISION_LABEL),
                ready=is_pod_ready(pod) and bool((pod.get("status") or {}).get("podIP")),
                failures=tuple(failures),
                deleting=bool(meta.get("deletionTimestamp")),
            )
        )
    return tuple(sorted(found, key=lambda pod: pod.name))


async def read_inspected_files(
    backend: Backend, status: InferenceBackendStatus, inspectors: Sequence[InspectorPod], pods: Sequence[KubeObject]
) -> ModelFilesRead | None:
    """The model's files read from the spec's revision's inspector pod, when `plan` waits for them and it is Ready."""
    mine = next((pod for pod in inspectors if pod.revision == backend.revision), None)
    directory = model_directory(backend.model_name, backend.model_mount_path)
    if not model_files_due(backend, status, mine) or mine is None or isinstance(directory, str):
        return None
    ip = next(str(p["status"]["podIP"]) for p in pods if p["metadata"]["name"] == mine.name)
    return await read_model_files(ip, backend.engine_port, directory, str(backend.claim_name))


async def read_gpu_nodes(cluster: ClusterApi, backend: Backend) -> GpuNodes:
    """The GPU nodes of the backend's `template.nodeSelector`, or why they could not be read (never raises
    for the API server's answer: an estimate without nodes says so and refuses nothing)."""
    node_selector = backend.spec.template.node_selector
    selector = ",".join(f"{key}={value}" for key, value in sorted(node_selector.items()))
    try:
        nodes = await in_thread(partial(cluster.list_nodes, selector))
    except ApiException as error:
        if error.status == 403:
            return GpuNodes(problem="turnout may not list nodes: grant it list on nodes, or set resources.gpuMemory")
        return GpuNodes(problem=f"the API server answered {error.status} listing nodes")
    except (urllib3.exceptions.HTTPError, OSError) as error:
        return GpuNodes(problem=f"no answer from the API server listing nodes ({type(error).__name__})")
    return gpu_nodes_of(nodes, node_selector)


def check_targets(pods: Sequence[KubeObject], color: Color, revision: str, port: int) -> list[CheckTarget]:
    """Ready pods of `color` running `revision`, with an IP."""
    return [
        CheckTarget(pod=p["metadata"]["name"], ip=p["status"]["podIP"], port=port)
        for p in pods
        if _color_of(p) == color
        and (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision
        and is_pod_ready(p)
        and (p.get("status") or {}).get("podIP")
    ]


async def observe(
    cluster: ClusterApi,
    body: Mapping[str, Any],
    backend: Backend | None,
    now: datetime,
    checker: Checker | None = None,
    scraper: Scraper | None = None,
    benchmarker: Benchmarker | None = None,
    querier: Querier | None = None,
) -> Observed:
    """Read everything `plan` needs about one backend, and run this round's checks if due.

    The round is run by `checker`, by default `run_checks` (HTTP to the pods); a canary step's round
    also reads both colors' traffic with `scraper`, by default `scrape_traffic`, and asks the team's
    Prometheus the queries of `analysis.metrics` with `querier`, by default `query_prometheus`. In phase Benchmarking
    `benchmarker` runs the benchmark (`reconcile` gives `run_benchmark`; None: no benchmark is run).
    """
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    status = InferenceBackendStatus.model_validate(body.get("status") or {})
    selector = f"{BACKEND_LABEL}={name}"
    deployments = await in_thread(lambda: cluster.list_deployments(namespace, selector))
    pods = await in_thread(lambda: cluster.list_pods(namespace, selector))
    service = None
    claim_exists = False
    check: CheckOutcome | None = None
    traffic: TrafficSample | None = None
    benchmark: BenchmarkRun | None = None
    route: RouteState | None = None
    gpu_nodes: GpuNodes | None = None
    model_files: ModelFilesRead | None = None
    conflicts: list[str] = []
    inspectors = inspectors_of(pods, name, meta["uid"])
    if backend is not None:
        service = await in_thread(lambda: cluster.get_service(namespace, backend.service_name))
        conflicts += _found(ownership_conflict(service, "Service", name, meta["uid"]))
        listed = {d["metadata"]["name"]: d for d in deployments}
        deployments = []
        for color in Color:
            wanted = deployment_name(backend, color)
            # One not labelled as this backend's is not listed: a Deployment of that name is someone else's.
            found = listed.get(wanted)
            if found is None and foreign_deployment_matters(backend, status, color):
                found = await in_thread(partial(cluster.get_deployment, namespace, wanted))
            conflict = ownership_conflict(found, "Deployment", name, meta["uid"])
            if conflict is not None:
                conflicts.append(conflict)
            elif found is not None:
                deployments.append(found)
        route = await read_route(cluster, backend, meta["uid"], conflicts)
        if conflicts:
            service = None
        claim = backend.claim_name
        if claim is not None and backend.spec.model.storage and backend.spec.model.storage.create:
            claim_exists = await in_thread(lambda: cluster.get_claim(namespace, claim)) is not None
        target = check_due(status, backend.spec.rollout.checks.interval_seconds, now, backend.revision)
        if target is not None:
            check = await (checker or run_checks)(cluster, backend, pods, target)
            if judges_a_step(backend, status, target):
                # The pods' counters and the team's Prometheus at once: the round waits for the slower.
                counted, metrics = await asyncio.gather(
                    read_traffic(backend, status, pods, scraper or scrape_traffic),
                    read_metrics(backend, status, now, querier or _query),
                )
                traffic = replace(counted, metrics=metrics)
        if benchmarker is not None and benchmark_due(backend, status):
            benchmark = await benchmarker(cluster, backend, status, pods)
        model_files = await read_inspected_files(backend, status, inspectors, pods)
        if gpu_memory_due(backend, status, model_files):
            gpu_nodes = await read_gpu_nodes(cluster, backend)
    annotations = meta.get("annotations") or {}
    return Observed(
        now=now,
        generation=int(meta.get("generation") or 0),
        status=status,
        colors=color_states(deployments, pods),
        service_exists=service is not None,
        service_current=backend is None
        or service_is_current(service, render_service(backend, service_color(service) or Color.BLUE)),
        service_color=service_color(service),
        service_split=service_splits(service),
        claim_exists=claim_exists,
        check=check,
        traffic=traffic,
        benchmark=benchmark,
        route=route,
        promote=annotations.get(PROMOTE_ANNOTATION),
        abort=annotations.get(ABORT_ANNOTATION),
        retry=annotations.get(RETRY_ANNOTATION),
        paused=PAUSE_ANNOTATION in annotations,
        change_cause=annotations.get(CHANGE_CAUSE_ANNOTATION),
        conflicts=tuple(conflicts),
        gpu_nodes=gpu_nodes,
        inspectors=inspectors,
        model_files=model_files,
    )


def foreign_deployment_matters(backend: Backend, status: InferenceBackendStatus, color: Color) -> bool:
    """Whether a Deployment of `color`'s name that is not the backend's (so not in turnout's caches) must
    be looked up: only for a color a plan may create, the serving one (re-created when deleted), the one
    a rollback goes back to, and the one a new revision goes to. Not for the idle color otherwise, so a
    backend at rest, Degraded or not, costs no request (at 1000 backends those lookups, each a 404,
    were most of the operator's reads)."""
    if color in (status.active_color, status.previous_color, status.preview_color):
        return True
    if backend.revision == status.active_revision:
        return False
    return color == (status.active_color.other if status.active_color is not None else FIRST_COLOR)


def _found(conflict: str | None) -> list[str]:
    return [conflict] if conflict is not None else []


async def api_key_digest(cluster: ClusterApi, backend: Backend) -> str | None:
    """A digest of the API key the backend's pods read (None when its engine takes none): a short
    sha256 of the value, never the value, or a word for a key that cannot be read.

    A transient API error propagates (the reconcile is retried): deciding on a guess would start a
    cutover the key did not ask for.
    """
    ref = backend.profile.api_key_ref(backend.spec)
    if ref is None:
        return None
    try:
        value = await in_thread(partial(cluster.read_secret_key, backend.namespace, ref.name, ref.key))
    except ApiException as error:
        if error.status in (401, 403):
            return "unreadable"
        if error.status == 404:
            return "missing"
        raise
    if value is None:
        return "missing"
    return "sha256:" + hashlib.sha256(value).hexdigest()[:16]


async def run_checks(
    cluster: ClusterApi,
    backend: Backend,
    pods: Sequence[KubeObject],
    color: Color,
    *,
    client: httpx.AsyncClient | None = None,
) -> CheckOutcome | None:
    """One round of engine-aware checks over the Ready pods of `color` that run the spec's revision.

    None when the API server could not give the API key now: a busy API server must not count
    as a failing revision. `client` is the HTTP client to use (default: one for the round).
    """
    try:
        api_key = await read_api_key(cluster, backend)
    except ApiKeyUnusable as unusable:
        return CheckOutcome(False, str(unusable))
    except RoundSkipped as skipped:
        log.warning("%s/%s: no check round this time: %s", backend.namespace, backend.name, skipped)
        return None
    checks = backend.spec.rollout.checks
    result: CheckRound = await check_round(
        backend.engine,
        backend.served_name,
        check_targets(pods, color, backend.revision, backend.engine_port),
        api_key=api_key,
        timeout_seconds=checks.timeout_seconds,
        smoke_request=checks.smoke_request,
        task=backend.task,
        client=client,
    )
    return CheckOutcome(result.passed, result.message, result.embedding_dimension)


def benchmark_due(backend: Backend, status: InferenceBackendStatus) -> bool:
    """The status says the spec's revision waits for its benchmark (phase Benchmarking)."""
    return (
        status.phase is Phase.BENCHMARKING
        and backend.spec.rollout.benchmark is not None
        and status.preview_color is not None
        and status.preview_revision == backend.revision
    )


async def read_route(cluster: ClusterApi, backend: Backend, uid: str, conflicts: list[str]) -> RouteState | None:
    """The HTTPRoute a routed canary sets weights on, and its colors' Services (a color Service that is
    someone else's joins `conflicts`); None when the backend names no route."""
    name = backend.http_route
    if name is None:
        return None
    names = color_service_names(backend)
    current = True
    for color, service_name in names.items():
        found = await in_thread(partial(cluster.get_service, backend.namespace, service_name))
        conflict = ownership_conflict(found, "Service", backend.name, uid)
        if conflict is not None:
            conflicts.append(conflict)
        current = current and found is not None and service_is_current(found, render_color_service(backend, color))
        current = current and service_color(found) == color
    route = await in_thread(partial(cluster.get_http_route, backend.namespace, name))
    if route is None:
        problem = f"HTTPRoute {name} does not exist in namespace {backend.namespace}: create it, with a rule whose "
        problem += f"backendRefs name Services {' and '.join(names.values())}"
        return RouteState(problem=problem, color_services=current)
    checked = route_with_weights(route, names, {Color.BLUE: 100, Color.GREEN: 0})
    if isinstance(checked, RouteProblem):
        return RouteState(problem=checked.message, color_services=current)
    return RouteState(weights=route_weights(route, names), color_services=current)


def judges_a_step(backend: Backend, status: InferenceBackendStatus, checked: Color) -> bool:
    """This round checks a canary in a step: its traffic and metrics are read to judge it."""
    return (
        backend.spec.rollout.strategy is Strategy.CANARY
        and status.canary is not None
        and checked == status.preview_color
        and status.active_color is not None
        and status.active_revision is not None
    )


async def read_traffic(
    backend: Backend, status: InferenceBackendStatus, pods: Sequence[KubeObject], scraper: Scraper
) -> TrafficSample:
    """Both colors' traffic in a canary step (`judges_a_step`); without counters, saying why, when
    the engine serves no metrics."""
    canary, stable, stable_revision = status.preview_color, status.active_color, status.active_revision
    # judges_a_step() said so.
    assert canary is not None
    assert stable is not None
    assert stable_revision is not None
    if backend.profile.metrics is None:
        return TrafficSample(None, None, f"engine {backend.engine.value} serves no metrics")
    port = backend.engine_port
    canary_read = await scraper(backend, check_targets(pods, canary, backend.revision, port))
    stable_read = await scraper(backend, check_targets(pods, stable, stable_revision, port))
    problems = [
        f"{color}: {read.message}" for color, read in ((canary, canary_read), (stable, stable_read)) if read.message
    ]
    return TrafficSample(canary_read.counters, stable_read.counters, "; ".join(problems))


def query_variables(backend: Backend, status: InferenceBackendStatus, now: datetime) -> dict[str, str]:
    """What `{{ name }}` stands for in a canary step's Prometheus queries (`spec.QUERY_VARIABLES`)."""
    interval = backend.spec.rollout.checks.interval_seconds
    canary = status.canary
    started = parse_time(canary.step_started_at) if canary is not None else None
    window = max(interval, int((now - started).total_seconds()) if started is not None else 0)
    return {
        "namespace": backend.namespace,
        "backend": backend.name,
        "service": backend.service_name,
        "canaryRevision": backend.revision,
        "stableRevision": status.active_revision or "",
        "canaryColor": str(status.preview_color or ""),
        "stableColor": str(status.active_color or ""),
        "interval": f"{interval}s",
        "window": f"{window}s",
    }


async def read_metrics(
    backend: Backend, status: InferenceBackendStatus, now: datetime, querier: Querier
) -> tuple[MetricReading, ...]:
    """The metrics of `analysis.metrics`, each asked of its Prometheus at once, bounded by the checks' timeout."""
    canary = backend.spec.rollout.canary
    if canary is None or not canary.analysis.metrics:
        return ()
    variables = query_variables(backend, status, now)
    timeout = float(backend.spec.rollout.checks.timeout_seconds)
    metrics = canary.analysis.metrics
    answers = await asyncio.gather(
        *(querier(m.prometheus.address, render_query(m.prometheus.query, variables), timeout) for m in metrics)
    )
    return tuple(
        MetricReading(metric.name, answer.value, answer.problem)
        for metric, answer in zip(metrics, answers, strict=True)
    )


async def _query(address: str, query: str, timeout_seconds: float) -> QueryAnswer:
    return await query_prometheus(address, query, timeout_seconds=timeout_seconds)


async def scrape_traffic(backend: Backend, targets: Sequence[CheckTarget]) -> TrafficScrape:
    """The given pods' traffic from the engine's metrics, each read bounded by the checks' timeout."""
    return await scrape_color(backend.profile, targets, timeout_seconds=backend.spec.rollout.checks.timeout_seconds)


async def read_api_key(cluster: ClusterApi, backend: Backend) -> str | None:
    """The API key the checks send, from the Secret the spec names; None when the engine takes none.

    Raises `ApiKeyUnusable` (the message names the Secret, its key and the spec field), or
    `RoundSkipped` when the API server is throttling, failing or out of reach.
    """
    profile = backend.profile
    ref = profile.api_key_ref(backend.spec)
    if ref is None:
        return None
    secret, field = f"Secret {ref.name}", profile.api_key_field
    try:
        value = await in_thread(lambda: cluster.read_secret_key(backend.namespace, ref.name, ref.key))
    except ApiException as error:
        status = error.status
        if status is None or status == 429 or status >= 500:
            raise RoundSkipped(f"the API server answered {status} reading {secret}") from None
        if status == 403:
            raise ApiKeyUnusable(
                f"cannot read {secret} ({field}): forbidden: grant get on secrets in {backend.namespace} "
                "to turnout's ServiceAccount"
            ) from None
        if status == 404:
            raise ApiKeyUnusable(
                f"{secret} ({field}) does not exist in namespace {backend.namespace}: create it, or name another"
            ) from None
        raise ApiKeyUnusable(f"cannot read {secret} ({field}): the API server answered {status}") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:  # timeouts, refused or broken connections
        raise RoundSkipped(f"no answer from the API server reading {secret} ({type(error).__name__})") from None
    if value is None:
        raise ApiKeyUnusable(f"{secret} has no key {ref.key} ({field}): add it, or name the key that holds the API key")
    problem = bearer_token_problem(value)
    if problem is not None:
        raise ApiKeyUnusable(
            f"the API key in {secret}, key {ref.key} ({field}), {problem}: store it as printable ASCII without "
            f"whitespace, e.g. kubectl create secret generic {ref.name} --from-literal={ref.key}=<key>"
        )
    return value.decode()


def _color_of(obj: Mapping[str, Any]) -> Color | None:
    value = (obj["metadata"].get("labels") or {}).get(COLOR_LABEL)
    return Color(value) if value in (Color.BLUE.value, Color.GREEN.value) else None
