"""The cluster as a reconcile reads it: backends, Deployments, pods and Services from watch-fed caches.

`CachedCluster` answers the reads a reconcile makes every time from `Informer`s (one per kind, in
each namespace the operator runs in, or in all), so an idle backend costs no request; the rest (a
Secret, nodes) and every write go to the API server. The informers of Deployments, pods,
Services and PersistentVolumeClaims carry a server-side label selector: only turnout's objects are
sent and held. An object a cache does not hold may still exist unlabelled (someone else's, which
turnout must not take over, or a claim the user made): it is looked up by name.

`ReadOnce` is one reconcile's view: a Secret is read at most once per reconcile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from kopf._cogs.structs.references import NamespaceName, match_namespace, select_specific_namespaces

from turnout.api.backend import KIND
from turnout.api.labels import BACKEND_LABEL
from turnout.kube.cluster import HTTP_ROUTE, HTTP_ROUTE_CRD, BackendRef, Cluster, ClusterApi, KubeObject
from turnout.kube.informer import Informer, Key, parse_selector

CLAIM = "PersistentVolumeClaim"
LABELLED_KINDS = ("Deployment", "Pod", "Service", CLAIM)
"""The kinds of turnout's own objects, watched with its label."""
SCOPED_KINDS = (*LABELLED_KINDS, KIND, HTTP_ROUTE)
"""The kinds watched in each namespace turnout serves (or in all)."""

Wake = Callable[[str, str], None]
"""Told (namespace, backend name) when something of that backend changed; called from an informer's thread."""


class CachedCluster:
    """`ClusterApi` with the reads of every reconcile served from watches, in `namespaces` (None: all)."""

    def __init__(self, api: Cluster, namespaces: Sequence[str] | None = None) -> None:
        self.api = api
        self.configuration = api.configuration
        self._scopes = scopes(namespaces)
        # Kopf takes globs (`ml-*`, `!kube-*`, comma-separated parts); with any, the watches are of all
        # namespaces and hold only the objects of those Kopf serves (a watch per matching namespace
        # would have to follow namespaces coming and going, as Kopf does).
        patterns = list(namespaces or ())
        self._serves: Callable[[str], bool] | None = (
            None if self._scopes != [None] or not patterns else partial(_serves, patterns)
        )
        self._informers: dict[tuple[str, str | None], Informer] = {}

    @staticmethod
    def watches(namespaces: Sequence[str] | None = None) -> int:
        """How many watches `start` opens for `namespaces` (as `turnout run --namespace` gives them)."""
        return len(SCOPED_KINDS) * len(scopes(namespaces)) + 1  # and the HTTPRoute CRD's

    @property
    def leading(self) -> Callable[[], bool]:
        return self.api.leading

    @leading.setter
    def leading(self, leading: Callable[[], bool]) -> None:
        self.api.leading = leading

    def may_write(self) -> bool:
        return self.api.may_write()

    def lease(self, namespace: str, name: str) -> Any:
        return self.api.lease(namespace, name)

    # -- the watches ---------------------------------------------------------------------------

    def start(self, wake: Wake) -> None:
        """Start listing and watching; `wake` hears of every change, by the backend it belongs to."""

        def by_label(obj: KubeObject) -> None:
            meta = obj.get("metadata") or {}
            owner = (meta.get("labels") or {}).get(BACKEND_LABEL)
            if owner:
                wake(str(meta.get("namespace") or ""), str(owner))

        def by_name(obj: KubeObject) -> None:
            meta = obj.get("metadata") or {}
            wake(str(meta.get("namespace") or ""), str(meta.get("name")))

        for scope in self._scopes:
            for kind in LABELLED_KINDS:
                self._start(kind, scope, BACKEND_LABEL, by_label)
            self._start(KIND, scope, None, by_name)
            # A route is the user's (no label of turnout's): all of the scope's are held, few and small. A
            # change wakes no backend (which backend names a route is in its spec): a canary step reads
            # it at its next look; the Gateway API's CRDs may be missing (then none), or come later.
            self._start(HTTP_ROUTE, scope, None, None, optional=True, defined=self._route_crd_held)
        routes = [informer for (kind, _), informer in self._informers.items() if kind == HTTP_ROUTE]

        def route_crd_changed(_: KubeObject) -> None:
            for informer in routes:
                informer.served_again()

        # The HTTPRoute CRD, watched by name: routes found absent are listed again when it comes, not polled.
        self._start("CustomResourceDefinition", None, None, route_crd_changed)

    def _start(
        self,
        kind: str,
        scope: str | None,
        selector: str | None,
        wake: Callable[[KubeObject], None] | None,
        optional: bool = False,
        defined: Callable[[], bool] | None = None,
    ) -> None:
        source = self.api.watch_source(kind)
        serves = self._serves if kind != "CustomResourceDefinition" else None
        informer = Informer(
            kind, source, scope, selector, wake, index_label=selector, optional=optional, namespaces=serves,
            defined=defined,
        )  # fmt: skip
        self._informers[kind, scope] = informer
        informer.start()

    def _route_crd_held(self) -> bool:
        """The HTTPRoute CRD is in its cache: a 404 listing routes is an API server still starting up."""
        crds = self._informers.get(("CustomResourceDefinition", None))
        return crds is not None and crds.holds("", HTTP_ROUTE_CRD)

    def stop(self) -> None:
        for informer in self._informers.values():
            informer.stop()

    @property
    def synced(self) -> bool:
        """Every informer has completed its first list."""
        return bool(self._informers) and all(informer.synced for informer in self._informers.values())

    def _cache(self, kind: str, namespace: str) -> Informer | None:
        return self._informers.get((kind, namespace)) or self._informers.get((kind, None))

    # -- reads -----------------------------------------------------------------------------------

    def get_backend(self, namespace: str, name: str) -> KubeObject | None:
        cache = self._cache(KIND, namespace)
        return cache.get(namespace, name) if cache else self.api.get_backend(namespace, name)

    def list_deployments(self, namespace: str, selector: str) -> list[KubeObject]:
        cache = self._cache("Deployment", namespace)
        if cache is None or BACKEND_LABEL not in parse_selector(selector):
            return self.api.list_deployments(namespace, selector)
        return cache.list(namespace, parse_selector(selector))

    def list_pods(self, namespace: str, selector: str) -> list[KubeObject]:
        cache = self._cache("Pod", namespace)
        if cache is None or BACKEND_LABEL not in parse_selector(selector):
            return self.api.list_pods(namespace, selector)
        return cache.list(namespace, parse_selector(selector))

    def get_deployment(self, namespace: str, name: str) -> KubeObject | None:
        """From the cache; one it does not hold is looked up (it may exist without turnout's label)."""
        cache = self._cache("Deployment", namespace)
        found = cache.get(namespace, name) if cache else None
        return found if found is not None else self.api.get_deployment(namespace, name)

    def get_service(self, namespace: str, name: str) -> KubeObject | None:
        """From the cache; one it does not hold is looked up (it may exist without turnout's label)."""
        cache = self._cache("Service", namespace)
        found = cache.get(namespace, name) if cache else None
        return found if found is not None else self.api.get_service(namespace, name)

    def get_claim(self, namespace: str, name: str) -> KubeObject | None:
        """From the cache (the claims turnout made carry its label); one it does not hold is looked up (the user's)."""
        cache = self._cache(CLAIM, namespace)
        found = cache.get(namespace, name) if cache else None
        return found if found is not None else self.api.get_claim(namespace, name)

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        # Still a GET, once per reconcile (`ReadOnce`), so a keyed backend costs one read per resync: a watch
        # needs list and watch on Secrets, and RBAC cannot narrow a list to the names the specs will
        # reference (a field selector per name is not a grant), so the chart would let turnout read every
        # Secret of those namespaces. It grants get only (tests/chart: no rule lists or watches Secrets).
        return self.api.read_secret_key(namespace, name, key)

    def read_config_map_key(self, namespace: str, name: str, key: str) -> str | None:
        return self.api.read_config_map_key(namespace, name, key)

    def get_http_route(self, namespace: str, name: str) -> KubeObject | None:
        """From the cache, which holds every route of the scope: one it lacks does not exist."""
        cache = self._cache(HTTP_ROUTE, namespace)
        return cache.get(namespace, name) if cache else self.api.get_http_route(namespace, name)

    def list_nodes(self, selector: str) -> list[KubeObject]:
        return self.api.list_nodes(selector)

    def list_controller_revisions(self, namespace: str, selector: str) -> list[KubeObject]:
        return self.api.list_controller_revisions(namespace, selector)

    # -- writes: to the API server, and what they answered kept as the newest copy --------------

    def apply(self, obj: KubeObject) -> None:
        meta = obj["metadata"]
        key: Key = (meta["namespace"], meta["name"])
        cache = self._cache(str(obj.get("kind")), key[0])
        try:
            stored = self.api.apply(obj)
        except BaseException:
            if cache is not None:
                cache.forget(key)
            raise
        if cache is not None:
            cache.wrote(stored, key, (stored.get("metadata") or {}).get("resourceVersion"))

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        cache = self._cache("Deployment", namespace)
        try:
            version = self.api.scale_deployment(namespace, name, replicas)
        except BaseException:
            if cache is not None:
                cache.forget((namespace, name))
            raise
        if cache is not None:
            cache.wrote(None, (namespace, name), version)

    def patch_backend_status(self, ref: BackendRef, status: KubeObject, resource_version: str | None = None) -> None:
        cache = self._cache(KIND, ref.namespace)
        key = (ref.namespace, ref.name)
        try:
            stored = self.api.patch_backend_status(ref, status, resource_version)
        except BaseException:
            if cache is not None:
                cache.forget(key)  # a conflict, or an answer lost: the next read asks the API server
            raise
        if cache is not None:
            cache.wrote(stored, key, (stored.get("metadata") or {}).get("resourceVersion"))

    def create_claim(self, obj: KubeObject) -> None:
        self.api.create_claim(obj)

    def create_pod(self, obj: KubeObject) -> None:
        # Not written through: until the watch brings it, a reconcile may create it again, which
        # `Cluster.create_pod` leaves as it is; a deleted one still cached is deleted again, harmlessly.
        self.api.create_pod(obj)

    def delete_pod(self, namespace: str, name: str) -> None:
        self.api.delete_pod(namespace, name)

    def replace_http_route(self, namespace: str, name: str, body: KubeObject) -> KubeObject:
        cache = self._cache(HTTP_ROUTE, namespace)
        try:
            stored = self.api.replace_http_route(namespace, name, body)
        except BaseException:
            if cache is not None:
                cache.forget((namespace, name))  # a conflict: the next read asks the API server
            raise
        if cache is not None:
            cache.wrote(stored, (namespace, name), (stored.get("metadata") or {}).get("resourceVersion"))
        return stored

    def create_controller_revision(self, obj: KubeObject) -> None:
        self.api.create_controller_revision(obj)

    def delete_controller_revision(self, namespace: str, name: str) -> None:
        self.api.delete_controller_revision(namespace, name)


def scopes(namespaces: Sequence[str] | None) -> list[str | None]:
    """Where the informers watch: each namespace when all are names, else (none given, or a glob) all."""
    patterns = list(namespaces or ())
    specific = select_specific_namespaces(patterns)
    if not patterns or len(specific) != len(set(patterns)):
        return [None]
    names: list[str | None] = [str(name) for name in sorted(specific)]
    return names


def _serves(patterns: Sequence[str], namespace: str) -> bool:
    """Whether Kopf, given `patterns` (`turnout run --namespace`), serves `namespace`: its own matching."""
    return any(match_namespace(NamespaceName(namespace), pattern) for pattern in patterns)


class ReadOnce:
    """One reconcile's reads: every call goes to `cluster`, but each Secret key is read once (its value or
    its error kept), so the key's digest, the check round and the benchmark see the same answer."""

    def __init__(self, cluster: ClusterApi) -> None:
        self._cluster = cluster
        self._secrets: dict[tuple[str, str, str], bytes | BaseException | None] = {}

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        wanted = (namespace, name, key)
        if wanted not in self._secrets:
            try:
                self._secrets[wanted] = self._cluster.read_secret_key(namespace, name, key)
            except Exception as error:
                self._secrets[wanted] = error
        found = self._secrets[wanted]
        if isinstance(found, BaseException):
            raise found
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cluster, name)
