"""`kubectl turnout` verbs against the cluster of the current kubeconfig/context: the I/O around `view`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import yaml

from turnout.api.backend import Backend, InvalidSpec
from turnout.api.status import Color
from turnout.plugin import view
from turnout.render import render_backend

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

    def annotate(self, namespace: str, name: str, key: str, value: str) -> None:
        body = {"metadata": {"annotations": {key: value}}}
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
        result = self._call(
            "list",
            f"events in namespace {namespace}",
            self.core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.kind=InferenceBackend,involvedObject.name={name}",
        )
        events = [dict(self.sanitize(e)) for e in result.items]
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


def _annotate(arguments: argparse.Namespace, cluster: Cluster, verb: str) -> int:
    namespace = arguments.namespace or cluster.default_namespace
    status = cluster.backend(namespace, arguments.name).get("status") or {}
    try:
        key, value = (
            view.promote_annotation(status, full=arguments.full) if verb == "promote" else view.abort_annotation(status)
        )
    except view.Refused as refused:
        print(f"kubectl turnout {verb}: {namespace}/{arguments.name}: {refused}", file=sys.stderr)
        return 1
    cluster.annotate(namespace, arguments.name, key, value)
    print(f"inferencebackend {namespace}/{arguments.name} annotated {key}={value}")
    return 0


def command_promote(arguments: argparse.Namespace, cluster: Cluster) -> int:
    return _annotate(arguments, cluster, "promote")


def command_abort(arguments: argparse.Namespace, cluster: Cluster) -> int:
    return _annotate(arguments, cluster, "abort")


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
        "(that pause only) or <revision> with --full (every pause). Refused when nothing is Paused.",
    )
    promote.add_argument("--full", action="store_true", help="canary: release every remaining pause")
    verb(
        "abort",
        "roll back the cutover in flight",
        "Annotate turnout.dev/abort with the revision in flight (the preview, or the active one while it "
        "bakes). Refused when no cutover is in flight.",
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
