"""An in-memory API server for the objects around InferenceBackends, and the controllers turnout relies on.

`FakeCluster` answers every read and write of `turnout.kube.cluster.ClusterApi` with plain dicts,
as the API server would: server-side apply replaces what turnout owns (spec, labels, owners) and
keeps what the server owns (uid, generation, status, a Service's clusterIP); the scale path sets
replicas only; a status merge patch removes the fields it sets to None; `metadata.generation`
moves on every change of a spec; an HTTPRoute (which a user creates) is replaced only by a body with
its current resourceVersion. It records every write turnout makes, so a test can count them.

Nothing happens by itself: `run_controllers()` is the Deployment and ReplicaSet controllers' turn
(pods for the template, old pods terminating), and a test says when pods become Ready or fail.
A test can also lose the next status write, or crash the operator after some writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException

from turnout.kube.cached import CachedCluster
from turnout.kube.cluster import BackendRef, ClusterApi, KubeObject

T = TypeVar("T")
REPLICA_SET_LABEL = "pod-template-hash"
TERMINATING_SINCE = "2026-01-01T00:00:00Z"
"""Every terminating pod carries this deletionTimestamp: only its presence matters to turnout."""


class NotFound(LookupError):
    """The object a write names does not exist (the API server's 404)."""


class OperatorCrashed(Exception):
    """The operator died at this write: it and everything after it in the reconcile never happened."""


@dataclass(frozen=True)
class Write:
    """One write turnout made: `verb` is apply, scale, create, replace or patch-status."""

    verb: str
    kind: str
    name: str
    body: KubeObject


@dataclass
class _Crash:
    writes_left: int


class FakeCluster:
    """The API server's objects by (kind, namespace, name), and turnout's writes in order."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], KubeObject] = {}
        self.writes: list[Write] = []
        self.service_selectors: list[dict[str, str]] = []
        """The Service's selector after each write that changed it (or created the Service)."""
        self.lose_status_writes = 0
        """How many of the next status patches are dropped, as if the operator died just before them."""
        self.status_writes_lost = 0
        """How many status patches were dropped so far."""
        self.secret_read_errors: list[Exception] = []
        """What the next Secret reads raise, one each, before Secrets are read again (e.g. an ApiException 503)."""
        self._crash: _Crash | None = None
        self._serial = 0

    # -- what a user (or kubectl) does -------------------------------------------------------

    def create_backend(self, namespace: str, name: str, spec: KubeObject) -> KubeObject:
        body = {
            "apiVersion": "turnout.dev/v1alpha1",
            "kind": "InferenceBackend",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": self._uid(),
                "generation": 1,
                "resourceVersion": str(self._next()),
            },
            "spec": _copy(spec),
        }
        self.objects["InferenceBackend", namespace, name] = body
        return _copy(body)

    def edit_backend_spec(self, namespace: str, name: str, spec: KubeObject) -> None:
        """`kubectl apply` of a new spec: the generation moves when the spec differs."""
        body = self._existing("InferenceBackend", namespace, name)
        if body["spec"] != spec:
            body["spec"] = _copy(spec)
            body["metadata"]["generation"] += 1
            body["metadata"]["resourceVersion"] = str(self._next())

    def annotate_backend(self, namespace: str, name: str, key: str, value: str) -> None:
        body = self._existing("InferenceBackend", namespace, name)
        body["metadata"].setdefault("annotations", {})[key] = value
        body["metadata"]["resourceVersion"] = str(self._next())

    def unannotate_backend(self, namespace: str, name: str, key: str) -> None:
        """`kubectl annotate ib NAME KEY-`."""
        meta = self._existing("InferenceBackend", namespace, name)["metadata"]
        meta.get("annotations", {}).pop(key, None)
        meta["resourceVersion"] = str(self._next())

    def delete_backend(self, namespace: str, name: str) -> None:
        """`kubectl delete`: the backend stays, marked, until its finalizer is removed."""
        self._existing("InferenceBackend", namespace, name)["metadata"]["deletionTimestamp"] = TERMINATING_SINCE

    def put_secret(self, namespace: str, name: str, data: dict[str, str | bytes]) -> None:
        """A Secret whose keys hold `data`: text stored as UTF-8, bytes as they are."""
        raw = {key: value.encode() if isinstance(value, str) else value for key, value in data.items()}
        encoded = {key: base64.b64encode(value).decode() for key, value in raw.items()}
        self.objects["Secret", namespace, name] = {"metadata": {"name": name, "namespace": namespace}, "data": encoded}

    def put_config_map(self, namespace: str, name: str, data: dict[str, str]) -> None:
        self.objects["ConfigMap", namespace, name] = {"metadata": {"name": name, "namespace": namespace}, "data": data}

    def put_http_route(self, namespace: str, name: str, spec: KubeObject) -> KubeObject:
        """`kubectl apply` of an HTTPRoute (gateway.networking.k8s.io/v1) with `spec`: created, or changed
        as another writer would change it (a new resourceVersion). Returns it as stored."""
        key = ("HTTPRoute", namespace, name)
        route = self.objects.get(key)
        if route is None:
            route = {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": name, "namespace": namespace, "uid": self._uid(), "generation": 0},
                "spec": {},
            }
            self.objects[key] = route
        self._store_route(route, _copy(spec))
        return _copy(route)

    def put_node(self, name: str, labels: dict[str, str], gpus: int = 1) -> None:
        """A node with `gpus` nvidia.com/gpu in its capacity and the given labels."""
        capacity = {"nvidia.com/gpu": str(gpus)} if gpus else {}
        self.objects[("Node", "", name)] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": dict(labels)},
            "status": {"capacity": capacity, "allocatable": dict(capacity)},
        }

    def crash_after(self, writes: int | None) -> None:
        """The operator dies at its write number `writes + 1` from now (0: at the next write); None: it does not."""
        self._crash = None if writes is None else _Crash(writes)

    # -- what the controllers and kubelets do ------------------------------------------------

    def run_controllers(self) -> None:
        """One turn of the Deployment controller: each Deployment gets its replicas of pods of its
        template; pods of another template, or beyond the replicas, start terminating; pods that
        were terminating are gone."""
        for key, pod in list(self.objects.items()):
            if key[0] == "Pod" and pod["metadata"].get("deletionTimestamp"):
                del self.objects[key]
        for (kind, namespace, name), deployment in list(self.objects.items()):
            if kind != "Deployment":
                continue
            template = deployment["spec"]["template"]
            template_hash = _template_hash(deployment)
            current = []
            for pod in self._pods_of(namespace, name):
                if pod["metadata"]["labels"].get(REPLICA_SET_LABEL) != template_hash:
                    pod["metadata"]["deletionTimestamp"] = TERMINATING_SINCE
                else:
                    current.append(pod)
            wanted = int(deployment["spec"].get("replicas") or 0)
            for surplus in current[wanted:]:
                surplus["metadata"]["deletionTimestamp"] = TERMINATING_SINCE
            for _ in range(wanted - len(current)):
                self._start_pod(namespace, name, template, template_hash)

    def pods_become_ready(self, namespace: str, deployment: str) -> None:
        """Every live pod of the Deployment's current template passes its readiness probe."""
        for pod in self.current_pods(namespace, deployment):
            container = pod["spec"]["containers"][0]["name"]
            pod["status"]["phase"] = "Running"
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}, _ready(True)]
            pod["status"]["containerStatuses"] = [
                {"name": container, "ready": True, "state": {"running": {"startedAt": TERMINATING_SINCE}}}
            ]

    def pods_fail(self, namespace: str, deployment: str, reason: str, message: str = "") -> None:
        """Every live pod of the Deployment's current template reports its container waiting for
        `reason` (CrashLoopBackOff, ImagePullBackOff, ...), and is not Ready."""
        for pod in self.current_pods(namespace, deployment):
            container = pod["spec"]["containers"][0]["name"]
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}, _ready(False)]
            pod["status"]["containerStatuses"] = [
                {"name": container, "ready": False, "state": {"waiting": {"reason": reason, "message": message}}}
            ]

    def current_pods(self, namespace: str, deployment: str) -> list[KubeObject]:
        """The live (not terminating) pods of the Deployment's current template."""
        found = self.objects.get(("Deployment", namespace, deployment))
        if found is None:
            return []
        current = _template_hash(found)
        return [
            pod
            for pod in self._pods_of(namespace, deployment)
            if not pod["metadata"].get("deletionTimestamp") and pod["metadata"]["labels"][REPLICA_SET_LABEL] == current
        ]

    # -- what the test reads ----------------------------------------------------------------

    def backend(self, namespace: str, name: str) -> KubeObject:
        return _copy(self._existing("InferenceBackend", namespace, name))

    def deployment(self, namespace: str, name: str) -> KubeObject | None:
        return _copy(self.objects.get(("Deployment", namespace, name)))

    def service(self, namespace: str, name: str) -> KubeObject | None:
        return _copy(self.objects.get(("Service", namespace, name)))

    def http_route(self, namespace: str, name: str) -> KubeObject | None:
        return _copy(self.objects.get(("HTTPRoute", namespace, name)))

    def writes_since(self, mark: int) -> list[Write]:
        """The writes after the first `mark` (take `len(cluster.writes)` as the mark)."""
        return self.writes[mark:]

    # -- ClusterApi: the reads ----------------------------------------------------------------

    def get_backend(self, namespace: str, name: str) -> KubeObject | None:
        return _copy(self.objects.get(("InferenceBackend", namespace, name)))

    def list_deployments(self, namespace: str, selector: str) -> list[KubeObject]:
        return self._list("Deployment", namespace, selector)

    def get_deployment(self, namespace: str, name: str) -> KubeObject | None:
        return self.deployment(namespace, name)

    def list_pods(self, namespace: str, selector: str) -> list[KubeObject]:
        return self._list("Pod", namespace, selector)

    def get_service(self, namespace: str, name: str) -> KubeObject | None:
        return self.service(namespace, name)

    def get_claim(self, namespace: str, name: str) -> KubeObject | None:
        return _copy(self.objects.get(("PersistentVolumeClaim", namespace, name)))

    def read_secret_key(self, namespace: str, name: str, key: str) -> bytes | None:
        if self.secret_read_errors:
            raise self.secret_read_errors.pop(0)
        secret = self.objects.get(("Secret", namespace, name))
        if secret is None:
            raise ApiException(status=404, reason="Not Found")
        encoded = secret.get("data", {}).get(key)
        return base64.b64decode(encoded) if encoded is not None else None

    def read_config_map_key(self, namespace: str, name: str, key: str) -> str | None:
        found = self.objects.get(("ConfigMap", namespace, name))
        if found is None:
            raise ApiException(status=404, reason="Not Found")
        value: str | None = found.get("data", {}).get(key)
        return value

    def get_http_route(self, namespace: str, name: str) -> KubeObject | None:
        return self.http_route(namespace, name)

    def list_nodes(self, selector: str) -> list[KubeObject]:
        return self._list("Node", "", selector)

    # -- ClusterApi: the writes ---------------------------------------------------------------

    def apply(self, obj: KubeObject) -> None:
        """Server-side apply with force: turnout's fields become what `obj` says, the server's stay."""
        kind = obj.get("kind")
        if (obj.get("apiVersion"), kind) not in (("apps/v1", "Deployment"), ("v1", "Service")):
            raise ValueError(f"turnout does not apply {obj.get('apiVersion')} {kind}")
        meta = obj["metadata"]
        key = (str(kind), meta["namespace"], meta["name"])
        self._write(Write("apply", str(kind), meta["name"], _copy(obj)))
        old = self.objects.get(key)
        new = _copy(obj)
        if old is None:
            new["metadata"].update(uid=self._uid(), generation=1)
            if kind == "Service":
                new["spec"]["clusterIP"] = f"10.96.0.{self._next()}"
        else:
            server_owned = {k: old["metadata"][k] for k in ("uid", "generation") if k in old["metadata"]}
            new["metadata"].update(server_owned)
            if kind == "Service":
                new["spec"]["clusterIP"] = old["spec"]["clusterIP"]
            if new["spec"] != old["spec"]:
                new["metadata"]["generation"] += 1
            if "status" in old:
                new["status"] = old["status"]
        self.objects[key] = new
        if kind == "Service" and (old is None or old["spec"].get("selector") != new["spec"].get("selector")):
            self.service_selectors.append(dict(new["spec"].get("selector") or {}))

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """The scale subresource: replicas only, the template (and its revision) untouched."""
        self._write(Write("scale", "Deployment", name, {"spec": {"replicas": replicas}}))
        deployment = self.objects.get(("Deployment", namespace, name))
        if deployment is None:
            raise NotFound(f"deployments.apps {name!r} not found")
        if deployment["spec"].get("replicas") != replicas:
            deployment["spec"]["replicas"] = replicas
            deployment["metadata"]["generation"] += 1

    def create_claim(self, obj: KubeObject) -> None:
        """Create once; a claim that exists is left as it is (the API server's 409, tolerated)."""
        meta = obj["metadata"]
        self._write(Write("create", "PersistentVolumeClaim", meta["name"], _copy(obj)))
        key = ("PersistentVolumeClaim", meta["namespace"], meta["name"])
        if key not in self.objects:
            claim = _copy(obj)
            claim["metadata"]["uid"] = self._uid()
            self.objects[key] = claim

    def create_pod(self, obj: KubeObject) -> None:
        """Create once; a pod that exists is left as it is (the API server's 409, tolerated)."""
        meta = obj["metadata"]
        self._write(Write("create", "Pod", meta["name"], _copy(obj)))
        key = ("Pod", meta["namespace"], meta["name"])
        if key not in self.objects:
            pod = _copy(obj)
            pod["metadata"]["uid"] = self._uid()
            self.objects[key] = pod

    def delete_pod(self, namespace: str, name: str) -> None:
        self._write(Write("delete", "Pod", name, {}))
        self.objects.pop(("Pod", namespace, name), None)

    def replace_http_route(self, namespace: str, name: str, body: KubeObject) -> KubeObject:
        """A PUT, as the API server answers it: 404 when there is no such route, 422 without a resourceVersion,
        409 when the route changed since `body` was read; else `body`'s spec, labels and annotations are stored
        (the server's metadata and the status stay) under a new resourceVersion."""
        self._write(Write("replace", "HTTPRoute", name, _copy(body)))
        route = self.objects.get(("HTTPRoute", namespace, name))
        if route is None:
            raise ApiException(status=404, reason="Not Found")
        version = (body.get("metadata") or {}).get("resourceVersion")
        if not version:
            raise ApiException(status=422, reason="Unprocessable Entity")
        if version != route["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        for field in ("labels", "annotations"):
            route["metadata"].pop(field, None)
            if field in body["metadata"]:
                route["metadata"][field] = _copy(body["metadata"][field])
        self._store_route(route, _copy(body.get("spec") or {}))
        return _copy(route)

    def list_controller_revisions(self, namespace: str, selector: str) -> list[KubeObject]:
        return self._list("ControllerRevision", namespace, selector)

    def create_controller_revision(self, obj: KubeObject) -> None:
        """Create; 409 when one of that name exists."""
        meta = obj["metadata"]
        self._write(Write("create", "ControllerRevision", meta["name"], _copy(obj)))
        key = ("ControllerRevision", meta["namespace"], meta["name"])
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        entry = _copy(obj)
        entry["metadata"].update(uid=self._uid(), creationTimestamp=TERMINATING_SINCE)
        self.objects[key] = entry

    def delete_controller_revision(self, namespace: str, name: str) -> None:
        self._write(Write("delete", "ControllerRevision", name, {}))
        self.objects.pop(("ControllerRevision", namespace, name), None)

    def history(self, namespace: str, name: str) -> list[KubeObject]:
        """The backend's ControllerRevisions, oldest number first."""
        found = self._list("ControllerRevision", namespace, f"turnout.dev/backend={name}")
        return sorted(found, key=lambda entry: int(entry["revision"]))

    def patch_backend_status(self, ref: BackendRef, status: KubeObject, resource_version: str | None = None) -> None:
        """A merge patch of the status subresource: None removes a field; the generation stays. With
        `resource_version`, 409 when the backend changed since (a new resourceVersion)."""
        if self.lose_status_writes > 0:
            self.lose_status_writes -= 1
            self.status_writes_lost += 1
            return
        self._write(Write("patch-status", "InferenceBackend", ref.name, _copy(status)))
        body = self.objects.get(("InferenceBackend", ref.namespace, ref.name))
        if body is None or body["metadata"]["uid"] != ref.uid:
            raise NotFound(f"inferencebackends {ref.name!r} not found")
        if resource_version is not None and resource_version != body["metadata"].get("resourceVersion"):
            raise ApiException(status=409, reason="Conflict")
        body["status"] = merge_patch(body.get("status") or {}, status)
        body["metadata"]["resourceVersion"] = str(self._next())

    # -- inside ---------------------------------------------------------------------------------

    def _write(self, write: Write) -> None:
        if self._crash is not None:
            if self._crash.writes_left == 0:
                self._crash = None
                raise OperatorCrashed(f"the operator died before {write.verb} {write.kind} {write.name}")
            self._crash.writes_left -= 1
        self.writes.append(write)

    def _store_route(self, route: KubeObject, spec: KubeObject) -> None:
        """`spec` becomes the route's; every write is a new resourceVersion, a changed spec a new generation."""
        if route["spec"] != spec or route["metadata"]["generation"] == 0:
            route["metadata"]["generation"] += 1
        route["spec"] = spec
        route["metadata"]["resourceVersion"] = str(self._next())

    def _list(self, kind: str, namespace: str, selector: str) -> list[KubeObject]:
        wanted = parse_selector(selector)
        return [
            _copy(obj)
            for (k, ns, _name), obj in sorted(self.objects.items())
            if k == kind
            and ns == namespace
            and all((obj["metadata"].get("labels") or {}).get(key) == value for key, value in wanted.items())
        ]

    def _pods_of(self, namespace: str, deployment: str) -> list[KubeObject]:
        return [
            pod
            for (kind, ns, _name), pod in sorted(self.objects.items())
            if kind == "Pod"
            and ns == namespace
            and pod["metadata"]["ownerReferences"][0]["name"].rpartition("-")[0] == deployment
        ]

    def _start_pod(self, namespace: str, deployment: str, template: KubeObject, template_hash: str) -> None:
        serial = self._next()
        name = f"{deployment}-{template_hash[:5]}-{serial}"
        labels = {**template["metadata"]["labels"], REPLICA_SET_LABEL: template_hash}
        self.objects["Pod", namespace, name] = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": labels,
                "ownerReferences": [
                    {"kind": "ReplicaSet", "name": f"{deployment}-{template_hash}", "controller": True}
                ],
            },
            # Only what the kubelet's status names: turnout reads a pod's metadata and status.
            "spec": {"containers": [{"name": c["name"]} for c in template["spec"]["containers"]]},
            "status": {
                "phase": "Pending",
                # Never contacted: the checks are the test's.
                "podIP": f"10.244.{serial // 250}.{serial % 250 + 2}",
                "conditions": [{"type": "PodScheduled", "status": "True"}, _ready(False)],
            },
        }

    def _existing(self, kind: str, namespace: str, name: str) -> KubeObject:
        found = self.objects.get((kind, namespace, name))
        if found is None:
            raise NotFound(f"{kind} {namespace}/{name} not found")
        return found

    def _uid(self) -> str:
        return f"00000000-0000-4000-8000-{self._next():012d}"

    def _next(self) -> int:
        self._serial += 1
        return self._serial


def parse_selector(selector: str) -> dict[str, str]:
    """An equality label selector `k=v,k2=v2` (the only kind turnout sends)."""
    wanted: dict[str, str] = {}
    for term in filter(None, selector.split(",")):
        key, equals, value = term.partition("=")
        if not equals or key.endswith("!"):
            raise ValueError(f"the fake cluster understands only k=v selectors, not {term!r}")
        wanted[key.strip()] = value.strip()
    return wanted


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, None deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return _copy(patch)
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _copy(obj: T) -> T:
    """A deep copy of plain JSON data, as each API response is a fresh object (json is faster than deepcopy)."""
    copied: T = json.loads(json.dumps(obj))
    return copied


def _template_hash(deployment: KubeObject) -> str:
    """The ReplicaSet controller's pod-template-hash: same template, same pods."""
    template = json.dumps(deployment["spec"]["template"], sort_keys=True)
    return hashlib.sha256(template.encode()).hexdigest()[:10]


def _ready(ready: bool) -> KubeObject:
    return {"type": "Ready", "status": "True" if ready else "False"}


def _both_stand_for_the_cluster(real: CachedCluster, fake: FakeCluster) -> tuple[ClusterApi, ClusterApi]:
    """Never called: mypy checks here that the real client (with its caches) and this fake both satisfy `ClusterApi`."""
    return real, fake
