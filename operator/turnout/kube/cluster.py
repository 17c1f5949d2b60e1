"""The Kubernetes API as turnout uses it: a few typed reads and writes over the dynamic client.

Every write is server-side apply under the field manager `turnout` (with force: turnout owns the
objects it renders), a merge patch of one field, a create that tolerates 409, or (an HTTPRoute, which
turnout does not own) a replace that carries the resourceVersion it was read with. The client is
synchronous; the async callers run it on turnout's own bounded pool of worker threads, and every
request has connect and read timeouts (`REQUEST_TIMEOUT`), so a half-open connection costs one
worker for seconds, never forever.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from turnout import USER_AGENT, metrics
from turnout.api.backend import GROUP, KIND, VERSION

FIELD_MANAGER = "turnout"
REQUEST_TIMEOUT = (5.0, 30.0)
"""Seconds to connect, and to wait for the answer, of any API request that does not set its own."""
API_WORKERS = 16
"""Blocking API calls in flight at once, across all backends."""
# A Secret read is part of a check round: an API server that does not answer skips the round, not the operator.
SECRET_READ_TIMEOUT_SECONDS = 10.0
NODE_LIST_TIMEOUT_SECONDS = 10.0
"""Seconds one list of nodes (for a GPU memory estimate) may take."""
ROUTE_REQUEST_TIMEOUT_SECONDS = 10.0
"""Seconds one read or replace of an HTTPRoute may take."""
GATEWAY_GROUP, GATEWAY_VERSION, HTTP_ROUTES = "gateway.networking.k8s.io", "v1", "httproutes"
HTTP_ROUTE = "HTTPRoute"
HTTP_ROUTE_CRD = f"{HTTP_ROUTES}.{GATEWAY_GROUP}"
"""The CustomResourceDefinition that makes the API server serve HTTPRoutes (watched by name: it may come later)."""
KubeObject = dict[str, Any]
T = TypeVar("T")


@dataclass(frozen=True)
class BackendRef:
    """Names an InferenceBackend and carries what an owner reference needs."""

    namespace: str
    name: str
    uid: str

    def owner_reference(self) -> KubeObject:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


class ClusterApi(Protocol):
    """The reads and writes turnout makes: what `Cluster` does over the API, and a test's fake in memory."""

    def get_backend(self, namespace: str, name: str) -> KubeObject | None: ...
    def list_deployments(self, namespace: str, selector: str) -> list[KubeObject]: ...
    def get_deployment(self, namespace: str, name: str) -> KubeObject | None: ...
    def list_pods(self, namespace: str, selector: str) -> list[KubeObject]: ...
    def get_service(self, namespace: str, name: str) -> KubeObject | None: ...
    def get_claim(self, namespace: str, name: str) -> KubeObject | None: ...
    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None: ...
    def read_config_map_key(self, namespace: str, name: str, key: str) -> str | None: ...
    def get_http_route(self, namespace: str, name: str) -> KubeObject | None: ...
    def list_nodes(self, selector: str) -> list[KubeObject]: ...
    def replace_http_route(self, namespace: str, name: str, body: KubeObject) -> KubeObject: ...
    def apply(self, obj: KubeObject) -> None: ...
    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None: ...
    def create_claim(self, obj: KubeObject) -> None: ...
    def create_pod(self, obj: KubeObject) -> None: ...
    def delete_pod(self, namespace: str, name: str) -> None: ...
    def patch_backend_status(
        self, ref: BackendRef, status: KubeObject, resource_version: str | None = None
    ) -> None: ...
    def list_controller_revisions(self, namespace: str, selector: str) -> list[KubeObject]: ...
    def create_controller_revision(self, obj: KubeObject) -> None: ...
    def delete_controller_revision(self, namespace: str, name: str) -> None: ...


class NotLeading(Exception):
    """This replica does not hold the leader-election Lease (any more): it writes nothing."""


class CrdMissing(Exception):
    """The API server does not serve InferenceBackends: the CRD is not installed."""


class Cluster:
    """Reads and writes of the objects around InferenceBackends."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.configuration: client.Configuration = api_client.configuration
        self.leading: Callable[[], bool] = lambda: True
        """Whether this replica may write: with leader election, while it holds the Lease."""
        self._dynamic = DynamicClient(api_client)
        self._core = client.CoreV1Api(api_client)
        # Not through discovery: a cluster without the Gateway API must still run every other backend.
        self._custom = client.CustomObjectsApi(api_client)
        self._deployments = self._dynamic.resources.get(api_version="apps/v1", kind="Deployment")
        self._services = self._dynamic.resources.get(api_version="v1", kind="Service")
        self._pods = self._dynamic.resources.get(api_version="v1", kind="Pod")
        self._claims = self._dynamic.resources.get(api_version="v1", kind="PersistentVolumeClaim")
        self._history = self._dynamic.resources.get(api_version="apps/v1", kind="ControllerRevision")
        try:
            self._backends = self._dynamic.resources.get(api_version=f"{GROUP}/{VERSION}", kind=KIND)
        except ResourceNotFoundError:
            raise CrdMissing(
                f"the API server does not serve {KIND} ({GROUP}/{VERSION}): install the CRD first, "
                "e.g. kubectl apply --server-side -f crds/"
            ) from None

    @classmethod
    def connect(cls, kubeconfig: str | None = None, watches: int = 0) -> Cluster:
        """In-cluster credentials when running in a pod, else the kubeconfig (or $KUBECONFIG); `watches`: how
        many watches turnout's informers will hold open (`CachedCluster.watches`), each with a connection."""
        configuration = client.Configuration()
        if kubeconfig is None:
            try:
                config.load_incluster_config(client_configuration=configuration)
            except config.ConfigException:
                config.load_kube_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        # One connection per worker and per watch (turnout.kube.cached), none discarded as surplus.
        configuration.connection_pool_maxsize = API_WORKERS + watches
        api_client = BoundedApiClient(configuration)
        api_client.user_agent = USER_AGENT  # the API server's audit log tells turnout's requests apart
        return cls(api_client)

    def lease(self, namespace: str, name: str) -> ClusterLease:
        """The Lease of leader election."""
        return ClusterLease(self._dynamic, namespace, name)

    # -- reads -------------------------------------------------------------------------------

    def list_deployments(self, namespace: str, selector: str) -> list[KubeObject]:
        return _items(self._deployments.get(namespace=namespace, label_selector=selector))

    def get_deployment(self, namespace: str, name: str) -> KubeObject | None:
        return _get(lambda: self._deployments.get(namespace=namespace, name=name))

    def list_pods(self, namespace: str, selector: str) -> list[KubeObject]:
        return _items(self._pods.get(namespace=namespace, label_selector=selector))

    def get_service(self, namespace: str, name: str) -> KubeObject | None:
        return _get(lambda: self._services.get(namespace=namespace, name=name))

    def get_claim(self, namespace: str, name: str) -> KubeObject | None:
        return _get(lambda: self._claims.get(namespace=namespace, name=name))

    def get_backend(self, namespace: str, name: str) -> KubeObject | None:
        return _get(lambda: self._backends.get(namespace=namespace, name=name))

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        """One key of one Secret, as stored (any bytes); None when the Secret has no such key.

        Raises ApiException as the API server answers: 404 when there is no such Secret.
        """
        secret = self._core.read_namespaced_secret(name, namespace, _request_timeout=SECRET_READ_TIMEOUT_SECONDS)
        encoded = (secret.data or {}).get(key)
        return base64.b64decode(encoded) if encoded is not None else None

    def read_config_map_key(self, namespace: str, name: str, key: str) -> str | None:
        """One key of one ConfigMap's `data`; None when it has no such key.

        Raises ApiException as the API server answers: 404 when there is no such ConfigMap.
        """
        found = self._core.read_namespaced_config_map(name, namespace, _request_timeout=SECRET_READ_TIMEOUT_SECONDS)
        value: str | None = (found.data or {}).get(key)
        return value

    def get_http_route(self, namespace: str, name: str) -> KubeObject | None:
        """The HTTPRoute (gateway.networking.k8s.io/v1) as stored, resourceVersion included; None when
        there is none of that name, or the API server serves no HTTPRoutes (no Gateway API CRDs): both 404."""
        try:
            found = self._custom.get_namespaced_custom_object(
                GATEWAY_GROUP, GATEWAY_VERSION, namespace, HTTP_ROUTES, name,
                _request_timeout=ROUTE_REQUEST_TIMEOUT_SECONDS,
            )  # fmt: skip
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return cast(KubeObject, found)  # the custom objects API answers with the JSON object as a dict

    def list_nodes(self, selector: str) -> list[KubeObject]:
        """The nodes with the labels of `selector` (all nodes when it is empty), as plain dicts.

        Raises ApiException as the API server answers: 403 when turnout may not list nodes.
        """
        found = self._core.list_node(label_selector=selector, _request_timeout=NODE_LIST_TIMEOUT_SECONDS)
        return [cast(KubeObject, self._core.api_client.sanitize_for_serialization(node)) for node in found.items]

    # -- writes ------------------------------------------------------------------------------

    def may_write(self) -> bool:
        return self.leading()

    def _guard(self, verb: str) -> None:
        """Every write first: a replica that lost its Lease must not write, even mid-reconcile."""
        if not self.leading():
            raise NotLeading("this replica does not hold the leader-election lease")
        metrics.record_api_write(verb)

    def apply(self, obj: KubeObject) -> KubeObject:
        """Server-side apply `obj` as the field manager `turnout`; only the kinds turnout renders for apply.
        Returns the object as stored."""
        self._guard("apply")
        appliable = {("apps/v1", "Deployment"): self._deployments, ("v1", "Service"): self._services}
        resource = appliable.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
        if resource is None:
            raise ValueError(f"turnout does not apply {obj.get('apiVersion')} {obj.get('kind')}")
        stored = resource.server_side_apply(
            body=obj,
            namespace=obj["metadata"]["namespace"],
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        return cast(KubeObject, stored.to_dict())

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> str | None:
        """Set replicas only, through the scale subresource, leaving the template alone; returns the
        Deployment's resourceVersion after the change (the Scale's own)."""
        self._guard("scale")
        scale = self._deployments.subresources["scale"].patch(
            body={"spec": {"replicas": replicas}},
            namespace=namespace,
            name=name,
            content_type="application/merge-patch+json",
            field_manager=FIELD_MANAGER,
        )
        version = (scale.to_dict().get("metadata") or {}).get("resourceVersion")
        return None if version is None else str(version)

    def create_claim(self, obj: KubeObject) -> None:
        """Create a claim once; a claim that already exists is left as it is."""
        self._guard("create")
        try:
            self._claims.create(body=obj, namespace=obj["metadata"]["namespace"], field_manager=FIELD_MANAGER)
        except ApiException as error:
            if error.status != 409:
                raise

    def create_pod(self, obj: KubeObject) -> None:
        """Create a pod (the inspector) once; one that already exists is left as it is."""
        self._guard("create")
        try:
            self._pods.create(body=obj, namespace=obj["metadata"]["namespace"], field_manager=FIELD_MANAGER)
        except ApiException as error:
            if error.status != 409:
                raise

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod (the inspector); one already gone is fine."""
        self._guard("delete")
        with contextlib.suppress(NotFoundError):
            self._pods.delete(namespace=namespace, name=name)

    def replace_http_route(self, namespace: str, name: str, body: KubeObject) -> KubeObject:
        """Replace (PUT) the HTTPRoute with `body`, a route as read with its fields changed; return it as stored.

        `body` keeps `metadata.resourceVersion` from the read, so the API server refuses the write with
        409 Conflict when someone changed the route since (read again and recompute), instead of losing
        their change; without one it answers 422. Raises ApiException as the API server answers (404: gone).
        """
        self._guard("replace")
        stored = self._custom.replace_namespaced_custom_object(
            GATEWAY_GROUP, GATEWAY_VERSION, namespace, HTTP_ROUTES, name, body,
            field_manager=FIELD_MANAGER, _request_timeout=ROUTE_REQUEST_TIMEOUT_SECONDS,
        )  # fmt: skip
        return cast(KubeObject, stored)

    def list_controller_revisions(self, namespace: str, selector: str) -> list[KubeObject]:
        return _items(self._history.get(namespace=namespace, label_selector=selector))

    def create_controller_revision(self, obj: KubeObject) -> None:
        self._guard("create")
        self._history.create(body=obj, namespace=obj["metadata"]["namespace"], field_manager=FIELD_MANAGER)

    def delete_controller_revision(self, namespace: str, name: str) -> None:
        """Delete one; one already gone is fine."""
        self._guard("delete")
        with contextlib.suppress(NotFoundError):
            self._history.delete(namespace=namespace, name=name)

    def patch_backend_status(
        self, ref: BackendRef, status: KubeObject, resource_version: str | None = None
    ) -> KubeObject:
        """Merge-patch the status subresource; None values remove fields. With `resource_version` (the
        backend's as read), the API server answers 409 Conflict when the backend changed since.
        Returns the backend as stored."""
        self._guard("patch")
        body: KubeObject = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        stored = self._backends.status.patch(
            body=body,
            namespace=ref.namespace,
            name=ref.name,
            content_type="application/merge-patch+json",
            field_manager=FIELD_MANAGER,
        )
        return cast(KubeObject, stored.to_dict())

    def watch_source(self, kind: str) -> DynamicWatchSource | RouteWatchSource:
        """List, watch and get of one of the kinds turnout caches: Deployment, Pod, Service,
        PersistentVolumeClaim, InferenceBackend, HTTPRoute; and the HTTPRoute's CRD ("CustomResourceDefinition")."""
        if kind == HTTP_ROUTE:
            return RouteWatchSource(self._custom, self.get_http_route)
        if kind == "CustomResourceDefinition":
            definitions = self._dynamic.resources.get(api_version="apiextensions.k8s.io/v1", kind=kind)
            return DynamicWatchSource(definitions, field_selector=f"metadata.name={HTTP_ROUTE_CRD}")
        resources = {
            "Deployment": self._deployments,
            "Pod": self._pods,
            "Service": self._services,
            "PersistentVolumeClaim": self._claims,
            KIND: self._backends,
        }
        return DynamicWatchSource(resources[kind])


WATCH_SECONDS = 120
"""How long the API server keeps one watch request open before it ends it (and the informer resumes it)."""
WATCH_READ_SLACK_SECONDS = 30.0
"""How much longer than the watch's own server-side timeout a watch may stay silent before it is dropped."""


class DynamicWatchSource:
    """A `turnout.kube.informer.WatchSource` over one resource of the dynamic client, bounded by
    `REQUEST_TIMEOUT` (a watch's read timeout is its server-side timeout plus some slack)."""

    def __init__(self, resource: Any, field_selector: str | None = None) -> None:
        self._resource = resource
        self._field_selector = field_selector
        self._watcher: watch.Watch | None = None

    def list(self, namespace: str | None, selector: str | None) -> tuple[list[KubeObject], str]:
        found = self._resource.get(
            namespace=namespace, label_selector=selector, field_selector=self._field_selector
        ).to_dict()
        return list(found.get("items") or []), str((found.get("metadata") or {}).get("resourceVersion") or "")

    def watch(self, namespace: str | None, selector: str | None, resource_version: str) -> Iterator[KubeObject]:
        self._watcher = watch.Watch()
        yield from self._watcher.stream(
            self._resource.get,
            namespace=namespace,
            label_selector=selector,
            field_selector=self._field_selector,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            serialize=False,
            _request_timeout=(REQUEST_TIMEOUT[0], WATCH_SECONDS + WATCH_READ_SLACK_SECONDS),
        )

    def get(self, namespace: str, name: str) -> KubeObject | None:
        return _get(lambda: self._resource.get(namespace=namespace, name=name))

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()


class RouteWatchSource:
    """A `turnout.kube.informer.WatchSource` over the Gateway API's HTTPRoutes, through the custom objects
    API (not discovery: without the Gateway API CRDs, the list answers 404 and the informer holds none)."""

    def __init__(self, custom: client.CustomObjectsApi, get: Callable[[str, str], KubeObject | None]) -> None:
        self._custom = custom
        self._get = get
        self._watcher: watch.Watch | None = None

    def _list_call(self, namespace: str | None) -> tuple[Callable[..., Any], tuple[str, ...]]:
        if namespace is None:
            return self._custom.list_cluster_custom_object, (GATEWAY_GROUP, GATEWAY_VERSION, HTTP_ROUTES)
        return self._custom.list_namespaced_custom_object, (GATEWAY_GROUP, GATEWAY_VERSION, namespace, HTTP_ROUTES)

    def list(self, namespace: str | None, selector: str | None) -> tuple[list[KubeObject], str]:
        call, args = self._list_call(namespace)
        found = cast(KubeObject, call(*args, label_selector=selector or "", _request_timeout=REQUEST_TIMEOUT))
        return list(found.get("items") or []), str((found.get("metadata") or {}).get("resourceVersion") or "")

    def watch(self, namespace: str | None, selector: str | None, resource_version: str) -> Iterator[KubeObject]:
        call, args = self._list_call(namespace)
        self._watcher = watch.Watch()
        yield from self._watcher.stream(
            call,
            *args,
            label_selector=selector or "",
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_SECONDS,
            _request_timeout=(REQUEST_TIMEOUT[0], WATCH_SECONDS + WATCH_READ_SLACK_SECONDS),
        )

    def get(self, namespace: str, name: str) -> KubeObject | None:
        return self._get(namespace, name)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()


class BoundedApiClient(client.ApiClient):
    """An API client whose every request has timeouts (`REQUEST_TIMEOUT` unless the call sets its own):
    the typed and the dynamic clients both go through `call_api`."""

    def call_api(
        self,
        method: Any,
        url: Any,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        timeout = _request_timeout or REQUEST_TIMEOUT
        return super().call_api(method, url, header_params, body, post_params, _request_timeout=timeout)


_workers = ThreadPoolExecutor(max_workers=API_WORKERS, thread_name_prefix="turnout-api")


class ClusterLease:
    """One `coordination.k8s.io/v1` Lease, read and written as dicts (see `turnout.kube.lease`)."""

    def __init__(self, dynamic: DynamicClient, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self._leases = dynamic.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")

    def get(self) -> KubeObject | None:
        return _get(lambda: self._leases.get(namespace=self.namespace, name=self.name))

    def create(self, body: KubeObject) -> None:
        self._leases.create(body=body, namespace=self.namespace)

    def replace(self, body: KubeObject) -> None:
        self._leases.replace(body=body, namespace=self.namespace, name=self.name)


async def in_thread(call: Callable[[], T]) -> T:
    """Run a blocking client call on turnout's API workers, without blocking the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_workers, call)


def _items(result: Any) -> list[KubeObject]:
    return [item for item in result.to_dict().get("items", [])]


def _get(call: Callable[[], Any]) -> KubeObject | None:
    try:
        found: KubeObject = call().to_dict()
    except NotFoundError:
        return None
    return found


__all__ = ["FIELD_MANAGER", "BackendRef", "Cluster", "ClusterApi", "CrdMissing", "KubeObject", "in_thread"]
