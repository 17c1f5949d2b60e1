"""The `turnout` command (`turnout render`, a dry run; `turnout bench`; `turnout run`) and the `kubectl turnout`
plugin's entry point."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from turnout.api.backend import GROUP, KIND, VERSION, Backend, InvalidSpec
from turnout.api.benchmark import BenchmarkResult
from turnout.api.status import Color
from turnout.benchmark import report
from turnout.benchmark.load import LoadPlan
from turnout.render import render_backend

API_VERSION = f"{GROUP}/{VERSION}"


def _positive_int(text: str) -> int:
    """argparse's type for a count of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


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


def command_bench(arguments: argparse.Namespace) -> int:
    """`turnout bench`: the benchmark of URL (then of --compare URL2), as a table or JSON; 1 when it could
    not run or no request was answered, 2 on a bad argument."""
    import asyncio
    import json

    from turnout.benchmark.load import chat_completions_url

    urls = [arguments.url] + ([arguments.compare] if arguments.compare else [])
    try:
        plans = _bench_plans(arguments, urls)
        runs = asyncio.run(_bench_runs(plans, progress=sys.stderr.isatty()))
    except _BenchRefused as error:
        print(f"turnout bench: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print("turnout bench: interrupted", file=sys.stderr)
        return 130
    labels = [chat_completions_url(url).removesuffix("/chat/completions") for url in urls]
    if arguments.json:
        print(json.dumps(_bench_document(arguments, labels, runs), indent=2))
    else:
        max_tokens = plans[0].max_tokens if plans[0].max_tokens is not None else "as each request says"
        print(
            f"model {arguments.model}: {arguments.requests} requests per endpoint, "
            f"concurrency {arguments.concurrency}, max tokens {max_tokens}"
        )
        print(report.table(list(zip(labels, runs, strict=True))))
    silent = [label for label, run in zip(labels, runs, strict=True) if run.completed == 0]
    for label in silent:
        print(f"turnout bench: {label} answered none of the requests", file=sys.stderr)
    return 1 if silent else 0


class _BenchRefused(Exception):
    """`turnout bench` cannot run; the message is its one line, `status` its exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _bench_plans(arguments: argparse.Namespace, urls: list[str]) -> list[LoadPlan]:
    """One run's plan per URL, from the command line; raises _BenchRefused (2 for a bad argument)."""
    from turnout.benchmark.load import EndpointError
    from turnout.benchmark.prompts import PromptsError, built_in_requests, read_jsonl_file

    try:
        prompts = read_jsonl_file(Path(arguments.prompts)) if arguments.prompts else built_in_requests()
    except PromptsError as error:
        raise _BenchRefused(str(error)) from None
    api_key = _bench_api_key(arguments.api_key_env)
    try:
        return [
            LoadPlan(
                base_url=url,
                model=arguments.model,
                prompts=prompts,
                requests=arguments.requests,
                concurrency=arguments.concurrency,
                max_tokens=arguments.max_tokens or None,
                timeout_seconds=arguments.timeout,
                request_timeout_seconds=arguments.request_timeout,
                api_key=api_key,
            )
            for url in urls
        ]
    except (EndpointError, ValueError) as error:
        raise _BenchRefused(str(error), status=2) from None


def _bench_api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        raise _BenchRefused(f"--api-key-env {variable}: the environment variable is not set or empty")
    return value


async def _bench_runs(plans: Sequence[LoadPlan], *, progress: bool) -> list[BenchmarkResult]:
    """Each plan's run, one after the other; first, every endpoint must answer HTTP."""
    from turnout.benchmark.load import connect_problem, run_load

    for plan in plans:
        problem = await connect_problem(plan.base_url)
        if problem:
            raise _BenchRefused(f"cannot reach {plan.base_url}: {problem}")
    results = []
    for plan in plans:
        bar = _ProgressBar(plan.base_url) if progress else None
        try:
            results.append(await run_load(plan, progress=bar))
        finally:
            if bar is not None:
                bar.clear()
    return results


class _ProgressBar:
    """`URL [#####.....] 37/100` on one line of stderr, redrawn in place."""

    WIDTH = 30

    def __init__(self, label: str) -> None:
        self.label = label

    def __call__(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // total
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}")
        sys.stderr.flush()

    def clear(self) -> None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def _bench_document(arguments: argparse.Namespace, labels: list[str], runs: list[BenchmarkResult]) -> dict[str, Any]:
    """What `turnout bench --json` prints: the load, each run by its URL, and with two runs their ratios."""
    document: dict[str, Any] = {
        "model": arguments.model,
        "requests": arguments.requests,
        "concurrency": arguments.concurrency,
        "maxTokens": arguments.max_tokens or None,
        "runs": [
            {"url": label, "result": run.model_dump(mode="json", by_alias=True)}
            for label, run in zip(labels, runs, strict=True)
        ],
    }
    if len(runs) == 2:
        document["ratios"] = report.ratios(runs[0], runs[1])
    return document


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

    bench = commands.add_parser(
        "bench",
        help="benchmark an OpenAI-compatible endpoint (vLLM, Ollama's /v1) with streamed chat completions",
        description="Send a bounded load of streamed chat completions to URL and report throughput (output "
        "tokens/s), time to first token and end-to-end latency, as `rollout.benchmark` measures a revision. "
        "With --compare, the same load then goes to URL2 (never both at once) and the ratios URL2 / URL are shown.",
    )
    bench.add_argument("url", metavar="URL", help="OpenAI base URL, e.g. http://localhost:8000/v1 (no path: /v1)")
    bench.add_argument("--model", required=True, help="model name sent in each request (the served name)")
    bench.add_argument("--requests", type=int, default=100, help="requests per endpoint (default 100)")
    bench.add_argument("--concurrency", type=int, default=8, help="requests in flight at once (default 8)")
    bench.add_argument(
        "--max-tokens", type=int, default=128, help="max_tokens of each request (default 128; 0: each request's own)"
    )
    bench.add_argument("--api-key-env", metavar="VAR", help="environment variable holding the API key (Bearer)")
    bench.add_argument(
        "--prompts",
        metavar="FILE",
        help='JSONL file, one OpenAI chat request per line, at least {"messages": [...]} (default: built-in prompts)',
    )
    bench.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="seconds one endpoint's run may take (default 600)"
    )
    bench.add_argument(
        "--request-timeout", type=float, metavar="S", help="seconds one request may take (default: none)"
    )
    bench.add_argument("--compare", metavar="URL2", help="then benchmark URL2 the same way and show the ratios")
    bench.add_argument("--json", action="store_true", help="print the results as JSON on stdout, nothing else")
    bench.set_defaults(handler=command_bench)

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
        help="watch this namespace, or the namespaces of a Kopf pattern: globs (ml-*), exclusions (!ml-test), "
        "comma-separated parts (repeatable; default: all namespaces). With a pattern, turnout's own caches "
        "watch all namespaces and keep those that match: it needs list and watch cluster-wide",
    )
    run.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus metrics port (0: off; default 8080)")
    run.add_argument("--health-port", type=int, default=8081, help="liveness endpoint port, /healthz (default 8081)")
    run.add_argument("--bind", default="0.0.0.0", help="address for the metrics and health ports (default 0.0.0.0)")
    run.add_argument(
        "--leader-election-namespace",
        metavar="NAMESPACE",
        help="act only while holding the Lease --leader-election-id in this namespace (replicas of one "
        "install share it; the chart sets its own namespace); without it, no leader election",
    )
    run.add_argument(
        "--leader-election-id", default="turnout", metavar="NAME", help="the Lease's name (default turnout)"
    )
    run.add_argument(
        "--reconciles-at-once",
        type=_positive_int,
        default=None,
        metavar="N",
        help="backends reconciled at the same time, the others wait their turn (default 16)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    run.set_defaults(handler=command_run)
    return parser


def command_run(arguments: argparse.Namespace) -> int:
    """`turnout run`: the operator, until SIGINT/SIGTERM."""
    import asyncio
    import logging
    import os
    import socket

    import kopf

    from turnout import handlers, metrics
    from turnout.health import Liveness, serve_health, standby_problem
    from turnout.kube.cached import CachedCluster
    from turnout.kube.cluster import Cluster, CrdMissing
    from turnout.kube.lease import LeaseElector

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
        cluster = Cluster.connect(arguments.kubeconfig, watches=CachedCluster.watches(arguments.namespaces))
    except (ConfigException, OSError) as error:
        print(f"turnout run: no Kubernetes credentials: {error}", file=sys.stderr)
        return 1
    except (HTTPError, ApiException) as error:
        print(f"turnout run: cannot reach the Kubernetes API: {error}", file=sys.stderr)
        return 1
    except CrdMissing as error:
        print(f"turnout run: {error}", file=sys.stderr)
        return 1
    liveness = Liveness()
    memo = kopf.Memo(
        cluster=CachedCluster(cluster, arguments.namespaces),
        liveness=liveness,
        reconciles_at_once=arguments.reconciles_at_once,
    )
    if arguments.metrics_port:
        metrics.serve_metrics(arguments.metrics_port, arguments.bind)
    if arguments.health_port:
        serve_health(liveness, arguments.bind, arguments.health_port)
    elector = None
    if arguments.leader_election_namespace:
        identity = f"{socket.gethostname()}-{os.getpid()}"
        lease = cluster.lease(arguments.leader_election_namespace, arguments.leader_election_id)
        elector = LeaseElector(lease, identity)
        liveness.role = lambda: standby_problem(elector)

    async def operate() -> int:
        stop = asyncio.Event()
        holding: asyncio.Task[None] | None = None
        if elector is not None:
            metrics.set_leading(False)
            await elector.acquire()
            cluster.leading = elector.leading
            holding = asyncio.create_task(elector.hold(stop))
        metrics.set_leading(True)
        try:
            await kopf.operator(
                registry=kopf.get_default_registry(),
                memo=memo,
                standalone=True,
                clusterwide=not arguments.namespaces,
                namespaces=arguments.namespaces or [],
                stop_flag=stop,
            )
        finally:
            if holding is not None:
                holding.cancel()
        if elector is None:
            return 0
        if stop.is_set():
            # Only `hold` sets it, on losing the Lease: exit, so that the restart stands by behind the new leader.
            return 1
        elector.release()
        return 0

    try:
        return asyncio.run(operate())
    except KeyboardInterrupt:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `turnout` console entry point; returns the exit status."""
    arguments = build_parser().parse_args(argv)
    status: int = arguments.handler(arguments)
    return status


def kubectl_plugin() -> int:
    """The `kubectl turnout` entry point (`turnout.plugin.command`)."""
    from turnout.plugin.command import main as plugin_main

    return plugin_main()
