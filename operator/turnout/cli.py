"""The `turnout` command (`turnout render`, a dry run) and the `kubectl turnout` plugin's entry point."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import yaml

from turnout.api.backend import GROUP, KIND, VERSION, Backend, InvalidSpec
from turnout.api.status import Color
from turnout.render import render_backend

API_VERSION = f"{GROUP}/{VERSION}"


def load_backend(document: Any, default_namespace: str = "default") -> Backend:
    """The validated Backend of one InferenceBackend object as `kubectl apply` would take it."""
    if not isinstance(document, dict):
        raise InvalidSpec("the file must hold one InferenceBackend object")
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        raise InvalidSpec(
            f"apiVersion/kind: expected {API_VERSION} {KIND}, got "
            f"{document.get('apiVersion')!r} {document.get('kind')!r}"
        )
    metadata = document.get("metadata") or {}
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidSpec("metadata.name: required")
    namespace = metadata.get("namespace") or default_namespace
    spec = document.get("spec")
    if not isinstance(spec, dict):
        raise InvalidSpec("spec: required, a mapping")
    return Backend.parse(name, str(namespace), spec)


def find_backend(documents: Sequence[Any], default_namespace: str) -> Backend:
    """The one InferenceBackend among `documents` (other kinds, such as a Secret, are skipped)."""
    backends = [document for document in documents if isinstance(document, dict) and document.get("kind") == KIND]
    if len(backends) != 1:
        raise InvalidSpec(f"the file must hold exactly one {KIND}, found {len(backends)}")
    return load_backend(backends[0], default_namespace)


class ManifestDumper(yaml.SafeDumper):
    """YAML for people: multi-line strings (the Ollama start script) as literal blocks."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    # PyYAML itself falls back to a quoted scalar when a literal block cannot hold the text exactly.
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


ManifestDumper.add_representer(str, _represent_text)


def render_stream(backend: Backend, color: Color, active: Color, out: TextIO) -> None:
    """Write `backend`'s objects to `out` as a YAML stream."""
    yaml.dump_all(
        render_backend(backend, color, active),
        out,
        Dumper=ManifestDumper,
        sort_keys=False,
        explicit_start=True,
        # PyYAML writes NEL and the Unicode line separators raw when allowed to, and reads them back
        # as line breaks; escaped, every string reads back exactly.
        allow_unicode=False,
        width=120,
    )


def command_render(arguments: argparse.Namespace) -> int:
    """`turnout render`: print the objects of the backend in the file; 1 when the spec is invalid."""
    try:
        if arguments.file == "-":
            documents = list(yaml.safe_load_all(sys.stdin))
        else:
            with open(arguments.file, encoding="utf-8") as stream:
                documents = list(yaml.safe_load_all(stream))
        backend = find_backend(documents, arguments.namespace)
    except (OSError, yaml.YAMLError) as error:
        print(f"turnout render: cannot read {arguments.file}: {error}", file=sys.stderr)
        return 1
    except InvalidSpec as error:
        print(f"turnout render: InvalidSpec: {error}", file=sys.stderr)
        return 1
    color = Color(arguments.color)
    active = Color(arguments.active) if arguments.active else color
    try:
        render_stream(backend, color, active, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`| head`); point stdout at nothing so exiting does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `turnout` command line."""
    parser = argparse.ArgumentParser(
        prog="turnout", description="Run vLLM and Ollama inference backends with blue/green cutovers."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render = commands.add_parser(
        "render",
        help="print the Kubernetes objects of an InferenceBackend (a dry run; nothing is applied)",
        description="Print, as a YAML stream, the objects turnout would create for the InferenceBackend "
        "in FILE: the model claim (when storage.create), the Deployment of one color, and the Service.",
    )
    render.add_argument("-f", "--file", required=True, help="InferenceBackend manifest ('-' for stdin)")
    colors = [color.value for color in Color]
    render.add_argument("--color", choices=colors, default=Color.BLUE.value, help="color to render (default blue)")
    render.add_argument("--active", choices=colors, help="color the Service selects (default: --color)")
    render.add_argument(
        "-n", "--namespace", default="default", help="namespace when the manifest names none (default: default)"
    )
    render.set_defaults(handler=command_render)

    run = commands.add_parser(
        "run",
        help="run the operator",
        description="Reconcile InferenceBackends: blue/green cutovers with engine-aware checks and rollback.",
    )
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NAMESPACE",
        help="watch this namespace (repeatable; default: all namespaces)",
    )
    run.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0: off; default 8080)")
    run.add_argument("--health-port", type=int, default=8081, help="liveness endpoint port, /healthz (default 8081)")
    run.add_argument("--bind", default="0.0.0.0", help="address for the metrics and health ports (default 0.0.0.0)")
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.set_defaults(handler=command_run)
    return parser


def command_run(arguments: argparse.Namespace) -> int:
    """`turnout run`: the operator, until SIGINT/SIGTERM."""
    import asyncio
    import logging

    import kopf

    from turnout import handlers, metrics
    from turnout.kube.cluster import Cluster, CrdMissing

    assert handlers.run_backend  # importing the module registers the Kopf handlers

    logging.basicConfig(
        level=logging.DEBUG if arguments.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not arguments.verbose:
        # One line per handler call and per check request drowns the decisions; keep those.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import ConfigException
    from urllib3.exceptions import HTTPError

    try:
        cluster = Cluster.connect(arguments.kubeconfig)
    except (ConfigException, OSError) as error:
        print(f"turnout run: no Kubernetes credentials: {error}", file=sys.stderr)
        return 1
    except (HTTPError, ApiException) as error:
        print(f"turnout run: cannot reach the Kubernetes API: {error}", file=sys.stderr)
        return 1
    except CrdMissing as error:
        print(f"turnout run: {error}", file=sys.stderr)
        return 1
    memo = kopf.Memo(cluster=cluster)
    if arguments.metrics_port:
        metrics.serve_metrics(arguments.metrics_port, arguments.bind)
    liveness = f"http://{arguments.bind}:{arguments.health_port}/healthz" if arguments.health_port else None
    asyncio.run(
        kopf.operator(
            registry=kopf.get_default_registry(),
            memo=memo,
            standalone=True,
            clusterwide=not arguments.namespaces,
            namespaces=arguments.namespaces or [],
            liveness_endpoint=liveness,
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `turnout` console entry point; returns the exit status."""
    arguments = build_parser().parse_args(argv)
    status: int = arguments.handler(arguments)
    return status


def kubectl_plugin() -> int:
    """The `kubectl turnout` entry point: the plugin has no commands yet, so it says in one line what
    works today and exits 2."""
    print(
        "kubectl turnout: no commands yet; today use `kubectl get ib`, `kubectl describe ib NAME`, "
        "`kubectl annotate ib NAME turnout.dev/promote=<revision>` to promote a Paused revision and "
        "`kubectl annotate ib NAME turnout.dev/abort=<revision>` to abort a cutover",
        file=sys.stderr,
    )
    return 2
