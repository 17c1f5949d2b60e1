"""`kubectl turnout` verbs against the cluster of the current kubeconfig/context: the I/O around `view`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from turnout.api.backend import Backend, InvalidSpec
from turnout.api.labels import BACKEND_LABEL, CHANGE_CAUSE_ANNOTATION
from turnout.api.status import Color
from turnout.plugin import view
from turnout.render import render_backend
from turnout.render.history import HistoryEntry, entries, find

GROUP, VERSION, PLURAL = "turnout.dev", "v1alpha1", "inferencebackends"


class PluginError(Exception):
    """A verb cannot go on; the message is its one line."""


def _api_error(error: Exception, verb: str, resource: str) -> PluginError:
    """One line for an error of the kubernetes client: missing, forbidden, unreachable."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        if error.status == 404:
            return PluginError(f"{resource} not found")
        if error.status == 403:
            return PluginError(f"forbidden: cannot {verb} {resource} ({_reason(error)})")
        return PluginError(f"{verb} {resource}: {error.status} {_reason(error)}")
    return PluginError(f"cannot reach the cluster: {error}")


def _reason(error: Any) -> str:
    try:
        return str(json.loads(error.body).get("message", error.reason))
    except (TypeError, ValueError, AttributeError):
        return str(error.reason)


class Cluster:
    """The few API calls the verbs make, each turning client errors into one PluginError line."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from kubernetes import client, config

        try:
            config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        except Exception as error:
            raise PluginError(f"cannot load the kubeconfig: {error}") from error
        chosen = context or (active or {}).get("name")
        by_name = {c["name"]: c for c in contexts or []}
        self.default_namespace = (by_name.get(chosen or "", {}).get("context") or {}).get("namespace", "default")
        self.custom = client.CustomObjectsApi()
        self.apps = client.AppsV1Api()
        self.core = client.CoreV1Api()
        self.sanitize: Any = client.ApiClient().sanitize_for_serialization

    def _call(self, verb: str, resource: str, call: Any, *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return call(*args, **kwargs)
        except ApiException as error:
            if missing_ok and error.status == 404:
                return None
            raise _api_error(error, verb, resource) from error
        except OSError as error:
            raise _api_error(error, verb, resource) from error
        except Exception as error:  # urllib3's MaxRetryError and friends
            if type(error).__module__.startswith("urllib3"):
                raise _api_error(error, verb, resource) from error
            raise

    def backend(self, namespace: str, name: str) -> dict[str, Any]:
        resource = f"inferencebackends.turnout.dev/{name} in namespace {namespace}"
        obj: dict[str, Any] = self._call(
            "get", resource, self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
        return obj

    def backends(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            result = self._call(
                "list",
                "inferencebackends.turnout.dev in all namespaces",
                self.custom.list_cluster_custom_object,
                GROUP,
                VERSION,
                PLURAL,
            )
        else:
            result = self._call(
                "list",
                f"inferencebackends.turnout.dev in namespace {namespace}",
                self.custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
            )
        return list(result.get("items", []))

    def annotate(self, namespace: str, name: str, changes: view.Annotations) -> None:
        """Merge-patch the backend's annotations: a value sets, None removes."""
        body = {"metadata": {"annotations": dict(changes)}}
        self._call(
            "patch",
            f"inferencebackends.turnout.dev/{name} in namespace {namespace}",
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
        )

    def replace(self, obj: dict[str, Any]) -> None:
        """PUT the backend as read with its spec changed: its resourceVersion makes a concurrent edit a conflict."""
        meta = obj["metadata"]
        self._call(
            "update",
            f"inferencebackends.turnout.dev/{meta['name']} in namespace {meta['namespace']}",
            self.custom.replace_namespaced_custom_object,
            GROUP,
            VERSION,
            meta["namespace"],
            PLURAL,
            meta["name"],
            obj,
        )

    def history(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """The ControllerRevisions labelled as the backend's (ownership is checked by the caller)."""
        return self._list(
            f"controllerrevisions.apps in namespace {namespace}",
            self.apps.list_namespaced_controller_revision,
            namespace,
            label_selector=f"{BACKEND_LABEL}={name}",
        )

    def _list(self, resource: str, call: Any, namespace: str, **selectors: Any) -> list[dict[str, Any]]:
        result = self._call("list", resource, call, namespace, **selectors)
        return [dict(self.sanitize(item)) for item in result.items]

    def _read(self, resource: str, call: Any, name: str, namespace: str) -> dict[str, Any] | None:
        obj = self._call("get", resource, call, name, namespace, missing_ok=True)
        return None if obj is None else dict(self.sanitize(obj))

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        resource = f"deployments.apps/{name} in namespace {namespace}"
        return self._read(resource, self.apps.read_namespaced_deployment, name, namespace)

    def service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read(
            f"services/{name} in namespace {namespace}", self.core.read_namespaced_service, name, namespace
        )

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        events = self._list(
            f"events in namespace {namespace}",
            self.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.kind=InferenceBackend,involvedObject.name={name}",
        )
        return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def _service_name(backend: dict[str, Any]) -> str:
    spec = backend.get("spec") or {}
    return str((spec.get("service") or {}).get("name") or backend["metadata"]["name"])


def _status_view(
    cluster: Cluster, namespace: str, name: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, list[dict[str, Any]]]:
    backend = cluster.backend(namespace, name)
    deployments = {color.value: cluster.deployment(namespace, f"{name}-{color.value}") for color in Color}
    service = cluster.service(namespace, _service_name(backend))
    return backend, deployments, service, cluster.events(namespace, name)


def command_status(arguments: argparse.Namespace, cluster: Cluster) -> int:
    namespace = arguments.namespace or cluster.default_namespace
    deadline = time.monotonic() + arguments.timeout if arguments.timeout else None
    terminal = sys.stdout.isatty()
    while True:
        backend, deployments, service, events = _status_view(cluster, namespace, arguments.name)
        phase = (backend.get("status") or {}).get("phase") or "Pending"
        if arguments.output == "json":
            print(json.dumps(backend, indent=2, sort_keys=True))
        elif arguments.output == "yaml":
            print(yaml.safe_dump(backend, sort_keys=False), end="")
        else:
            if arguments.watch and terminal:
                sys.stdout.write("\033[H\033[2J")
            sys.stdout.write(view.format_status(backend, deployments, service, events, colour=terminal))
        sys.stdout.flush()
        if not arguments.watch:
            return 0
        settled = view.watch_exit(backend)
        if settled is not None:
            return settled
        if deadline is not None and time.monotonic() > deadline:
            print(f"kubectl turnout status: timed out after {arguments.timeout:g}s in phase {phase}", file=sys.stderr)
            return 4
        time.sleep(arguments.interval)
        if not terminal:
            print("---")


def command_list(arguments: argparse.Namespace, cluster: Cluster) -> int:
    namespace = None if arguments.all_namespaces else (arguments.namespace or cluster.default_namespace)
    sys.stdout.write(view.format_list(cluster.backends(namespace)))
    return 0


def _annotate(
    arguments: argparse.Namespace, cluster: Cluster, changes_of: Callable[[dict[str, Any]], view.Annotations]
) -> int:
    """Read the backend, decide the annotation changes (or refuse in one line), patch them."""
    namespace = arguments.namespace or cluster.default_namespace
    backend = cluster.backend(namespace, arguments.name)
    try:
        changes = changes_of(backend)
    except view.Refused as refused:
        print(f"kubectl turnout {arguments.verb}: {namespace}/{arguments.name}: {refused}", file=sys.stderr)
        return 1
    cluster.annotate(namespace, arguments.name, changes)
    print(f"inferencebackend {namespace}/{arguments.name} annotated {view.describe_changes(changes)}")
    return 0


def command_promote(arguments: argparse.Namespace, cluster: Cluster) -> int:
    return _annotate(arguments, cluster, lambda backend: view.promote_annotations(backend, full=arguments.full))


def command_abort(arguments: argparse.Namespace, cluster: Cluster) -> int:
    return _annotate(arguments, cluster, view.abort_annotations)


def command_retry(arguments: argparse.Namespace, cluster: Cluster) -> int:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _annotate(arguments, cluster, lambda backend: view.retry_annotations(backend, now))


def command_pause(arguments: argparse.Namespace, cluster: Cluster) -> int:
    return _annotate(arguments, cluster, lambda backend: view.pause_annotations(backend, pause=True))


def command_resume(arguments: argparse.Namespace, cluster: Cluster) -> int:
    return _annotate(arguments, cluster, lambda backend: view.pause_annotations(backend, pause=False))


def _history(cluster: Cluster, namespace: str, backend: dict[str, Any]) -> list[HistoryEntry]:
    meta = backend["metadata"]
    return entries(cluster.history(namespace, meta["name"]), meta.get("uid"))


def command_history(arguments: argparse.Namespace, cluster: Cluster) -> int:
    namespace = arguments.namespace or cluster.default_namespace
    backend = cluster.backend(namespace, arguments.name)
    found = _history(cluster, namespace, backend)
    if arguments.revision is not None:
        entry = find(found, arguments.revision)
        if entry is None:
            kept = ", ".join(str(e.number) for e in found) or "none"
            raise PluginError(f"revision {arguments.revision} is not in the history of {namespace}/{arguments.name} "
                              f"(kept: {kept})")  # fmt: skip
        print(yaml.safe_dump({"revision": entry.number, "spec": entry.spec}, sort_keys=False), end="")
        return 0
    if arguments.output == "json":
        print(json.dumps([_entry_dict(e) for e in found], indent=2))
    elif arguments.output == "yaml":
        print(yaml.safe_dump([_entry_dict(e) for e in found], sort_keys=False), end="")
    else:
        sys.stdout.write(view.format_history(found, backend.get("status") or {}))
    return 0


def _entry_dict(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "revision": entry.number,
        "turnoutRevision": entry.revision,
        "changeCause": entry.change_cause,
        "created": entry.created,
        "spec": entry.spec,
    }


def command_undo(arguments: argparse.Namespace, cluster: Cluster) -> int:
    namespace = arguments.namespace or cluster.default_namespace
    backend = cluster.backend(namespace, arguments.name)
    where = f"{namespace}/{arguments.name}"
    try:
        target = view.undo_target(_history(cluster, namespace, backend), arguments.to_revision)
    except view.Refused as refused:
        raise PluginError(f"{where}: {refused}") from refused
    if backend.get("spec") == target.spec:
        print(f"inferencebackend {where}: skipped, the spec is revision {target.number}'s already")
        return 0
    status = backend.get("status") or {}
    if target.revision == status.get("lastFailedRevision"):
        print(
            f"kubectl turnout undo: note: revision {target.number} ({target.revision}) failed last time "
            f"({status.get('lastFailureReason')}); it is not tried again until "
            f"`kubectl turnout retry {arguments.name}`",
            file=sys.stderr,
        )
    changed = dict(backend)
    changed["spec"] = target.spec
    meta = changed["metadata"] = dict(backend["metadata"])
    cause = f"kubectl turnout undo {arguments.name} --to-revision={target.number}"
    meta["annotations"] = {**(meta.get("annotations") or {}), CHANGE_CAUSE_ANNOTATION: cause}
    changed.pop("status", None)
    cluster.replace(changed)
    print(f"inferencebackend {where} rolled back to revision {target.number} (turnout revision {target.revision})")
    return 0


def command_diff(arguments: argparse.Namespace, cluster: Cluster) -> int:
    namespace = arguments.namespace or cluster.default_namespace
    obj = cluster.backend(namespace, arguments.name)
    status = obj.get("status") or {}
    try:
        backend = _load(obj, namespace)
    except InvalidSpec as error:
        raise PluginError(f"the spec of {namespace}/{arguments.name} is invalid: {error}") from error
    active = Color(status.get("activeColor") or Color.BLUE.value)
    desired = [o for o in render_backend(backend, active, active) if o.get("kind") in ("Deployment", "Service")]
    live = [
        o
        for o in (
            cluster.deployment(namespace, f"{arguments.name}-{active.value}"),
            cluster.service(namespace, _service_name(obj)),
        )
        if o is not None
    ]
    for o, kind, version in zip(live, ("Deployment", "Service"), ("apps/v1", "v1"), strict=False):
        o.setdefault("kind", kind)
        o.setdefault("apiVersion", version)
    text = view.unified_diff(live, desired)
    sys.stdout.write(text)
    return 1 if text else 0


def _load(obj: dict[str, Any], namespace: str) -> Backend:
    from turnout.cli import load_backend

    return load_backend(obj, namespace)


VERBS = {
    "status": command_status,
    "list": command_list,
    "promote": command_promote,
    "abort": command_abort,
    "retry": command_retry,
    "pause": command_pause,
    "resume": command_resume,
    "history": command_history,
    "undo": command_undo,
    "diff": command_diff,
}


def build_plugin_parser() -> argparse.ArgumentParser:
    """The `kubectl turnout` command line."""
    parser = argparse.ArgumentParser(
        prog="kubectl turnout",
        description="Operate InferenceBackends: see a cutover, promote or abort it, diff the spec against the cluster.",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    verbs = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, help: str, description: str, named: bool = True) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help, description=description)
        if named:
            sub.add_argument("name", metavar="NAME", help="the InferenceBackend")
        sub.add_argument("-n", "--namespace", help="namespace (default: the context's)")
        sub.set_defaults(handler=VERBS[name])
        return sub

    status = verb(
        "status",
        "phase, colors, checks and recent Events of a backend",
        "Show the phase, the canary step, both colors (revision, Ready/desired), the color the Service "
        "selects, check/analysis/benchmark results, the last failure and recent Events. With --watch, "
        "redraw until the phase is Healthy (exit 0), Degraded (exit 1, a rollback) or Paused (exit 3); "
        "exit 4 when --timeout passes first. Other errors exit 1.",
    )
    status.add_argument("-o", "--output", choices=["json", "yaml"], help="print the InferenceBackend object instead")
    status.add_argument("-w", "--watch", action="store_true", help="redraw until Healthy, Degraded or Paused")
    status.add_argument(
        "--timeout", type=float, default=0.0, metavar="S", help="give up --watch after S seconds (exit 4)"
    )
    status.add_argument("--interval", type=float, default=2.0, metavar="S", help=argparse.SUPPRESS)
    listing = verb("list", "one line per backend", "List InferenceBackends, one line each.", named=False)
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="backends of every namespace")
    promote = verb(
        "promote",
        "release a Paused revision",
        "Annotate turnout.dev/promote: blue/green, the preview revision; a canary pause, <revision>/<step> "
        "(that pause only) or <revision> with --full (every pause); and lift a pause (turnout.dev/pause). "
        "Refused when nothing is Paused.",
    )
    promote.add_argument("--full", action="store_true", help="canary: release every remaining pause")
    verb(
        "abort",
        "roll back the cutover in flight",
        "Annotate turnout.dev/abort with the revision in flight (the preview, or the active one while it "
        "bakes). Refused when no cutover is in flight.",
    )
    verb(
        "retry",
        "try the last failed revision again",
        "Annotate turnout.dev/retry=<failed revision>@<now>: the operator runs a normal cutover to it once more "
        "without a spec change (and an abort annotation naming it is removed). Refused while a cutover is in "
        "flight or when no revision failed.",
    )
    verb(
        "pause",
        "hold every cutover before traffic moves",
        "Annotate turnout.dev/pause: a cutover goes on up to its switch (blue/green), its next weight (canary) "
        "or its scale-down of the serving color (Recreate) and waits there in phase Paused; checks, analysis and "
        "rollbacks go on. Refused when already paused.",
    )
    verb("resume", "lift a pause", "Remove turnout.dev/pause. Refused when not paused.")
    history = verb(
        "history",
        "the revisions rolled out, with their change cause",
        "List the backend's revision history (one ControllerRevision per revision rolled out, owned by the "
        "backend, at most spec.revisionHistoryLimit), oldest first, with what each is now: serving, in flight, "
        "warm, failed. The change cause is the backend's kubernetes.io/change-cause annotation when the "
        "cutover started.",
    )
    history.add_argument("--revision", type=int, metavar="N", help="print revision N's spec")
    history.add_argument("-o", "--output", choices=["json", "yaml"], help="print the entries with their specs")
    undo = verb(
        "undo",
        "go back to an earlier revision's spec",
        "Write revision N's spec (default: the one before the newest) back to the backend, which starts a "
        "normal cutover (fast when that revision's color is still warm). A concurrent edit of the backend "
        "fails the write instead of being lost.",
    )
    undo.add_argument(
        "--to-revision", type=int, metavar="N", help="the revision from `history` (default: the previous)"
    )
    verb(
        "diff",
        "what the next cutover would change",
        "Unified diff of the active color's Deployment and the Service as they are in the cluster against "
        "what the spec renders; fields the server sets (status, uid, managedFields, defaults) are left out. "
        "Writes nothing to the cluster. Exit 0: no difference, 1: differences.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The `kubectl turnout` entry point; returns the exit status."""
    arguments = build_plugin_parser().parse_args(argv)
    try:
        cluster = Cluster(arguments.kubeconfig, arguments.context)
        status: int = arguments.handler(arguments, cluster)
    except PluginError as error:
        print(f"kubectl turnout {arguments.verb}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status
