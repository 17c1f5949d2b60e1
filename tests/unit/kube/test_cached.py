"""The real reconcile reading from turnout's caches whose watches lag: what turnout wrote is what it reads,
so a stale copy never makes the planner act twice; and a Secret is read once per reconcile."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes.client.exceptions import ApiException

from testground.waiting import wait_for
from tests.unit.fakes.cluster import FakeCluster
from tests.unit.fakes.operator import NAME, NAMESPACE, InProcessOperator
from tests.unit.rollout.world import spec
from turnout.api.status import Color
from turnout.kube import informer
from turnout.kube.cached import CachedCluster, ReadOnce
from turnout.kube.cluster import HTTP_ROUTE_CRD, BackendRef, Cluster, KubeObject
from turnout.reconcile import reconcile
from turnout.rollout.actions import RecordEvent

NEW_MODEL = {"name": "meta-llama/Llama-3.2-3B-Instruct", "servedName": "chat"}


class StalledWatch:
    """A watch source over the fake cluster whose list is current and whose watch delivers nothing."""

    def __init__(self, cluster: FakeCluster, kind: str) -> None:
        self.cluster, self.kind = cluster, kind
        self._ended: queue.Queue[None] = queue.Queue()

    def list(self, namespace: str | None, selector: str | None) -> tuple[list[KubeObject], str]:
        found = [
            dict(obj)
            for (kind, ns, _), obj in self.cluster.objects.items()
            if kind == self.kind and (namespace is None or ns == namespace)
        ]
        return found, "1"

    def watch(self, namespace: str | None, selector: str | None, resource_version: str) -> Iterator[KubeObject]:
        self._ended.get()
        return iter(())

    def get(self, namespace: str, name: str) -> KubeObject | None:
        found = self.cluster.objects.get((self.kind, namespace, name))
        return None if found is None else dict(found)

    def stop(self) -> None:
        self._ended.put(None)


class FakeApi:
    """`Cluster` over the fake cluster: writes answer as the API server does (the object, or its version)."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.fake = cluster
        self.configuration = None
        self.leading = lambda: True
        self.secret_reads = 0

    def watch_source(self, kind: str) -> StalledWatch:
        return StalledWatch(self.fake, kind)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fake, name)

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        self.secret_reads += 1
        return self.fake.read_secret_key(namespace, name, key)

    def apply(self, obj: KubeObject) -> KubeObject:
        self.fake.apply(obj)
        return self._stamped(str(obj["kind"]), obj["metadata"]["namespace"], obj["metadata"]["name"])

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> str | None:
        self.fake.scale_deployment(namespace, name, replicas)
        return str(self._stamped("Deployment", namespace, name)["metadata"]["resourceVersion"])

    def patch_backend_status(self, ref: BackendRef, status: KubeObject, resource_version: str | None = None) -> Any:
        self.fake.patch_backend_status(ref, status, resource_version)
        return self.fake.get_backend(ref.namespace, ref.name)

    def _stamped(self, kind: str, namespace: str, name: str) -> KubeObject:
        stored = self.fake.objects[kind, namespace, name]
        stored["metadata"]["resourceVersion"] = str(self.fake._next())
        return dict(stored)


@pytest.fixture
def cached(operator: InProcessOperator) -> Iterator[tuple[CachedCluster, FakeApi]]:
    api = FakeApi(operator.cluster)
    cluster = CachedCluster(cast(Cluster, api), [NAMESPACE])
    yield cluster, api
    cluster.stop()


def reconcile_cached(operator: InProcessOperator, cluster: CachedCluster) -> float:
    events: list[RecordEvent] = []

    async def once() -> float:
        return await reconcile(
            cluster, NAMESPACE, NAME, events.append, checker=operator.checker, clock=lambda: operator.now
        )

    delay = asyncio.run(once())
    operator.events += events
    return delay


def test_a_switch_read_back_from_a_stalled_watch_is_made_once(
    operator: InProcessOperator, cached: tuple[CachedCluster, FakeApi], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(informer, "CATCH_UP_SECONDS", 0.05)
    cluster, _ = cached
    operator.start_healthy(spec())
    operator.start_verifying(spec(model=NEW_MODEL))
    cluster.start(lambda namespace, name: None)
    mark, events = len(operator.cluster.writes), len(operator.events)
    # From here on the caches know only the list and turnout's own writes: the watch never delivers.
    for _ in range(8):
        operator.advance(5)
        reconcile_cached(operator, cluster)
    assert operator.service_color() == "green"
    assert operator.status().phase == "Baking"
    services = [w for w in operator.cluster.writes[mark:] if w.kind == "Service"]
    assert len(services) == 1, services
    assert [s["turnout.dev/color"] for s in operator.cluster.service_selectors] == ["blue", "green"]
    assert [e.reason for e in operator.events[events:]].count("Switched") == 1
    operator.advance(200)
    reconcile_cached(operator, cluster)
    assert operator.status().phase == "Healthy"
    operator.advance(60)
    for _ in range(3):  # a scale's answer is no Deployment: its version is waited for, then read by a GET
        reconcile_cached(operator, cluster)
    blue = operator.cluster.deployment(NAMESPACE, "chat-blue")
    assert blue is not None
    assert blue["spec"]["replicas"] == 0
    scales = [w for w in operator.cluster.writes[mark:] if w.verb == "scale"]
    assert len(scales) == 1, scales  # the scale-down read back from its answer's version, not the stale list


def test_the_api_key_secret_is_read_once_per_reconcile(operator: InProcessOperator) -> None:
    operator.cluster.put_secret(NAMESPACE, "vllm-key", {"token": "sk-1"})
    api = FakeApi(operator.cluster)
    once = ReadOnce(cast(Cluster, api))
    for _ in range(3):
        assert once.read_secret_key(NAMESPACE, "vllm-key", "token") == b"sk-1"
    assert api.secret_reads == 1
    operator.cluster.secret_read_errors = [ApiException(status=503)]
    again = ReadOnce(cast(Cluster, api))
    for _ in range(2):
        with pytest.raises(ApiException):
            again.read_secret_key(NAMESPACE, "vllm-key", "token")
    assert api.secret_reads == 2  # one more read, its error kept for the rest of the reconcile


def test_reads_come_from_the_lists_and_other_namespaces_from_the_api_server(
    operator: InProcessOperator, cached: tuple[CachedCluster, FakeApi]
) -> None:
    cluster, _ = cached
    operator.start_healthy(spec())
    cluster.start(lambda namespace, name: None)
    assert cluster.get_backend(NAMESPACE, NAME) == operator.cluster.get_backend(NAMESPACE, NAME)
    assert cluster.synced
    listed = cluster.list_deployments(NAMESPACE, f"turnout.dev/backend={NAME}")
    assert [d["metadata"]["name"] for d in listed] == ["chat-blue"]
    service = cluster.get_service(NAMESPACE, NAME)
    assert service is not None
    assert service["spec"]["selector"]["turnout.dev/color"] == Color.BLUE.value
    assert cluster.get_backend("elsewhere", NAME) is None


class CountingApi(FakeApi):
    """`FakeApi` that counts the reads of claims and routes that reach the API server."""

    def __init__(self, cluster: FakeCluster) -> None:
        super().__init__(cluster)
        self.reads: list[str] = []

    def get_claim(self, namespace: str, name: str) -> KubeObject | None:
        self.reads.append(f"PersistentVolumeClaim {name}")
        return self.fake.get_claim(namespace, name)

    def get_http_route(self, namespace: str, name: str) -> KubeObject | None:
        self.reads.append(f"HTTPRoute {name}")
        return self.fake.get_http_route(namespace, name)


WITH_CLAIM = {
    "name": "meta-llama/Llama-3.1-8B-Instruct",
    "servedName": "chat",
    "storage": {"claimName": "models", "create": True},
}


def test_the_claim_turnout_made_is_read_from_its_watch(operator: InProcessOperator) -> None:
    operator.start_healthy(spec(model=WITH_CLAIM))
    assert operator.cluster.get_claim(NAMESPACE, "models") is not None
    api = CountingApi(operator.cluster)
    cluster = CachedCluster(cast(Cluster, api), [NAMESPACE])
    cluster.start(lambda namespace, name: None)
    try:
        mark = len(operator.cluster.writes)
        for _ in range(3):
            operator.advance(60)
            reconcile_cached(operator, cluster)
        assert operator.cluster.writes_since(mark) == []
        assert api.reads == []
        # A claim of that name the user made (not in turnout's cache) is still found, by name.
        assert cluster.get_claim(NAMESPACE, "theirs") is None
        assert api.reads == ["PersistentVolumeClaim theirs"]
    finally:
        cluster.stop()


class NoGatewayApi(StalledWatch):
    """The API server without the Gateway API's CRDs: listing HTTPRoutes answers 404."""

    lists = 0

    def list(self, namespace: str | None, selector: str | None) -> tuple[list[KubeObject], str]:
        NoGatewayApi.lists += 1
        raise ApiException(status=404, reason="Not Found")


def test_without_the_gateway_api_routes_are_none_and_listed_again_only_once_their_crd_comes(
    operator: InProcessOperator,
) -> None:
    api = CountingApi(operator.cluster)
    NoGatewayApi.lists = 0

    def source(kind: str) -> StalledWatch:
        return NoGatewayApi(operator.cluster, kind) if kind == "HTTPRoute" else StalledWatch(operator.cluster, kind)

    api.watch_source = source  # type: ignore[method-assign]
    cluster = CachedCluster(cast(Cluster, api), [NAMESPACE])
    cluster.start(lambda namespace, name: None)
    try:
        assert cluster.get_http_route(NAMESPACE, "chat") is None  # at once: the first list's 404 is "none"
        assert cluster.synced
        assert api.reads == []
        assert NoGatewayApi.lists == 1  # and not listed again while nothing says the CRD came
        routes = cluster._informers["HTTPRoute", NAMESPACE]
        routes.served_again()  # what the watch of the CRD does when it is created
        wait_for(lambda: NoGatewayApi.lists == 2, timeout=5, what="the routes listed again")
    finally:
        cluster.stop()


def test_a_route_is_read_from_its_watch_and_turnouts_replace_is_read_back(operator: InProcessOperator) -> None:
    route = operator.cluster.put_http_route(
        NAMESPACE, "chat", {"rules": [{"backendRefs": [{"name": "a", "port": 80}]}]}
    )
    api = CountingApi(operator.cluster)
    cluster = CachedCluster(cast(Cluster, api), [NAMESPACE])
    cluster.start(lambda namespace, name: None)
    try:
        found = cluster.get_http_route(NAMESPACE, "chat")
        assert found is not None
        assert found["spec"] == route["spec"]
        found["spec"]["rules"][0]["backendRefs"][0]["weight"] = 10
        cluster.replace_http_route(NAMESPACE, "chat", found)
        again = cluster.get_http_route(NAMESPACE, "chat")  # the watch never delivers: the answer is the newest
        assert again is not None
        assert again["spec"]["rules"][0]["backendRefs"][0]["weight"] == 10
        assert api.reads == []
    finally:
        cluster.stop()


@pytest.mark.parametrize("namespaces", [None, [NAMESPACE], [NAMESPACE, "team-b"], ["m*"], ["team-b", "!kube-*"]])
def test_the_connection_pool_is_sized_for_the_watches_the_caches_open(
    operator: InProcessOperator, namespaces: list[str] | None
) -> None:
    cluster = CachedCluster(cast(Cluster, FakeApi(operator.cluster)), namespaces)
    cluster.start(lambda namespace, name: None)
    try:
        assert len(cluster._informers) == CachedCluster.watches(namespaces)
    finally:
        cluster.stop()


def test_namespace_patterns_are_kopfs_globs_and_the_caches_hold_what_they_match(operator: InProcessOperator) -> None:
    operator.start_healthy(spec())
    operator.cluster.create_backend("mlx", NAME, spec())
    operator.cluster.create_backend("other", NAME, spec())
    woken: list[tuple[str, str]] = []
    cluster = CachedCluster(cast(Cluster, FakeApi(operator.cluster)), ["ml*, !mlx"])
    cluster.start(lambda namespace, name: woken.append((namespace, name)))
    try:
        assert cluster.get_backend(NAMESPACE, NAME) is not None  # from a watch of all namespaces
        assert cluster.get_backend("mlx", NAME) is None  # excluded, as Kopf excludes it: not held
        assert cluster.get_backend("other", NAME) is None
        assert {namespace for namespace, _ in woken} == {NAMESPACE}
        assert cluster.list_deployments(NAMESPACE, f"turnout.dev/backend={NAME}")
    finally:
        cluster.stop()


def test_a_404_for_routes_whose_crd_is_there_is_retried_not_taken_for_none(
    operator: InProcessOperator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API server starting up (or restarted) answers 404 for routes before it serves its CRDs again."""
    monkeypatch.setattr(informer, "BACKOFF_SECONDS", 0.01)
    crd = {"metadata": {"name": HTTP_ROUTE_CRD, "resourceVersion": "1"}}
    operator.cluster.objects["CustomResourceDefinition", "", HTTP_ROUTE_CRD] = crd
    operator.cluster.put_http_route(NAMESPACE, "chat", {"rules": [{"backendRefs": [{"name": "a", "port": 80}]}]})
    cluster = CachedCluster(cast(Cluster, FakeApi(operator.cluster)), [NAMESPACE])

    class Starting(StalledWatch):
        answered_404 = False

        def list(self, namespace: str | None, selector: str | None) -> tuple[list[KubeObject], str]:
            if not Starting.answered_404:
                # Once the CRD's own watch has it: the API server only starts serving the routes again.
                wait_for(lambda: cluster._informers["CustomResourceDefinition", None].synced, timeout=5,
                         what="the CRD listed")  # fmt: skip
                Starting.answered_404 = True
                raise ApiException(status=404, reason="Not Found")
            return super().list(namespace, selector)

    api = cast(FakeApi, cluster.api)
    api.watch_source = lambda kind: (Starting if kind == "HTTPRoute" else StalledWatch)(operator.cluster, kind)  # type: ignore[method-assign]
    cluster.start(lambda namespace, name: None)
    try:
        assert cluster.get_http_route(NAMESPACE, "chat") is not None
        assert Starting.answered_404
    finally:
        cluster.stop()
