"""One operator and many backends on the local test ground: prints numbers, asserts nothing.

  hack/bench-scale          (or: PYTHONPATH=hack:. .venv/bin/python bench/scale.py [--backends N])

Three measures, each of one `turnout run` process and the API server's own counters:
0. One backend's cutover (a model change -> Healthy on the other color), alone.
1. Start: N Ollama backends created at once -> all Healthy (wall clock), the operator's CPU
   (its CPU seconds / wall seconds), resident memory and the API requests/s meanwhile.
2. Idle: for a window longer than the serving revision's check interval, the requests the API
   server served per second by verb and resource (watches excluded: they are long-lived), the
   operator's own writes, the reads per second by client (the API server's audit log), and the
   operator's CPU.
3. Restart: the operator stopped and started again with the N backends Healthy -> every backend
   reconciled once (its `turnout_reconciles_total`), and what it wrote meanwhile (its own
   `turnout_api_writes_total` and the API server's write counters); then the first backend's
   cutover again, amid the N idle ones.
The test ground's nodes hold 110 pods each; more CPU nodes are added for N backends.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
from kubernetes import client, config

from testground.binaries import ensure_binaries
from testground.crds import install_crd
from testground.ground import TestGround
from testground.nodes import build_cpu_node
from tests.e2e.harness import Backends, OperatorProcess, ollama_spec
from turnout.api.backend import GROUP, PLURAL, VERSION
from turnout.api.crd import build_crd

PODS_PER_NODE = 110
SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
# Checks as a platform team would set them: one round every 10 s while a revision is new, the
# serving one every 60 s (the default), a 2 s timeout.
ROLLOUT = {
    "readyTimeoutSeconds": 300,
    "bakeSeconds": 10,
    "scaleDownDelaySeconds": 2,
    "checks": {"intervalSeconds": 10, "timeoutSeconds": 2, "successThreshold": 1, "failureThreshold": 3},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backends", type=int, default=1000, help="Ollama backends to create besides one timed alone (default 1000)"
    )
    parser.add_argument("--idle-seconds", type=int, default=300, help="length of the idle window (default 300)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds to wait for each phase (default 1800)")
    arguments = parser.parse_args()
    ground = TestGround()
    ground.start()
    try:
        api = config.new_client_from_config(config_file=ground.kubeconfig)
        core = client.CoreV1Api(api)
        for number in range(arguments.backends // PODS_PER_NODE + 1):
            core.create_node(body=build_cpu_node(f"scale-node-{number}"))  # type: ignore[arg-type]
        install_crd(api, build_crd())
        namespace = f"scale-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": namespace}})
        log_dir = Path(tempfile.mkdtemp(prefix="turnout-scale-"))
        operator = OperatorProcess(ground.kubeconfig, log_dir)
        operator.start()
        try:
            run(ground.kubeconfig, Backends(api, namespace), operator, arguments, ground.cluster.audit_log)
        finally:
            operator.stop()
        print(f"operator log: {operator.log_path}")
    finally:
        ground.stop()


def run(
    kubeconfig: str, backends: Backends, operator: OperatorProcess, arguments: argparse.Namespace, audit_log: Path
) -> None:
    count = arguments.backends
    names = [f"scale-{number:04d}" for number in range(count)]
    usage = Usage(operator)
    backends.create("solo", ollama_spec(rollout=ROLLOUT))
    backends.wait_phase("solo", "Healthy", timeout=arguments.timeout)
    alone = cutover(backends, "solo", "llama3:70b", arguments.timeout)
    print(f"one backend's cutover, alone: {alone:.1f} s", flush=True)

    before = request_counts(kubeconfig)
    started = time.monotonic()
    for name in names:
        backends.create(name, ollama_spec(rollout=ROLLOUT))
    created = time.monotonic() - started
    healthy = until(lambda: phases(backends)["Healthy"] >= count + 1, arguments.timeout, usage, backends)
    cpu, rss = usage.since_start()
    print(f"start: {count} backends created in {created:.1f} s; all Healthy {healthy:.1f} s after the first")
    print(f"  operator during start: CPU {cpu:.0%} of one core, peak RSS {usage.peak_rss_mib:.0f} MiB")
    print_rates(before, request_counts(kubeconfig), time.monotonic() - started)

    usage.reset()
    before = request_counts(kubeconfig)
    writes_before, audited = sum_metric(operator, "turnout_api_writes_total"), audit_log.stat().st_size
    time.sleep(arguments.idle_seconds)  # the measured window itself
    after = request_counts(kubeconfig)
    cpu, rss = usage.since_start()
    print(f"idle {arguments.idle_seconds} s: operator CPU {cpu:.1%} of one core, RSS {rss:.0f} MiB")
    print_rates(before, after, arguments.idle_seconds)
    own_writes = sum_metric(operator, "turnout_api_writes_total") - writes_before
    print(f"  the operator's own writes (turnout_api_writes_total): {own_writes:.0f}")
    print_reads(audit_log, audited, arguments.idle_seconds)
    print(f"  phases after idling: {dict(phases(backends))}")

    operator.stop()
    before = request_counts(kubeconfig)
    started = time.monotonic()
    operator.start()
    usage = Usage(operator)
    reconciled = until(lambda: operator.metric("turnout_reconciles_total") >= count + 1, arguments.timeout, usage, None)
    cpu, _ = usage.since_start()
    after = request_counts(kubeconfig)
    writes = sum(after.get(kind, 0.0) - before.get(kind, 0.0) for kind in after if kind[0] in WRITE_VERBS)
    own = sum_metric(operator, "turnout_api_writes_total")
    print(f"restart: {count} backends reconciled once {reconciled:.1f} s after the start "
          f"({time.monotonic() - started:.1f} s incl. start-up); operator CPU {cpu:.0%}")  # fmt: skip
    print(f"  writes meanwhile: turnout_api_writes_total {own:.0f}; API server, every writer: {writes:.0f}")
    amid = cutover(backends, "solo", "llama3:8b", arguments.timeout)
    print(f"one backend's cutover amid {count} idle ones: {amid:.1f} s (alone: {alone:.1f} s)")


def cutover(backends: Backends, name: str, model: str, timeout: float) -> float:
    """Seconds from a model change of `name` to Healthy on the other color."""
    color = backends.status(name)["activeColor"]
    started = time.monotonic()
    backends.replace_spec(name, ollama_spec(model=model, rollout=ROLLOUT))
    backends.wait(
        name,
        lambda status: status.get("phase") == "Healthy" and status.get("activeColor") != color,
        timeout=timeout,
        what=f"{name} Healthy on the other color",
    )
    return time.monotonic() - started


class Usage:
    """CPU seconds and resident memory of the operator's process, from /proc."""

    def __init__(self, operator: OperatorProcess) -> None:
        assert operator.process is not None
        self.pid = operator.process.pid
        self.peak_rss_mib = 0.0
        self.reset()

    def reset(self) -> None:
        self.wall, self.cpu = time.monotonic(), self._cpu_seconds()

    def sample(self) -> float:
        rss = self._rss_mib()
        self.peak_rss_mib = max(self.peak_rss_mib, rss)
        return rss

    def since_start(self) -> tuple[float, float]:
        """(CPU share of one core since the last reset, RSS now in MiB)."""
        return (self._cpu_seconds() - self.cpu) / (time.monotonic() - self.wall), self.sample()

    def _cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def until(done: Callable[[], bool], timeout: float, usage: Usage, backends: Backends | None) -> float:
    """Seconds until `done()`, sampling the operator's memory every 2 s and printing progress."""
    started = time.monotonic()
    last_report = started
    while not done():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"not done after {timeout} s")
        usage.sample()
        if backends is not None and time.monotonic() - last_report > 30:
            print(f"  {time.monotonic() - started:5.0f} s: {dict(phases(backends))}", flush=True)
            last_report = time.monotonic()
        time.sleep(2)  # a progress poll, not a wait for luck: done() is the condition
    return time.monotonic() - started


def phases(backends: Backends) -> Counter[str]:
    listed = backends.custom.list_namespaced_custom_object(GROUP, VERSION, backends.namespace, PLURAL)
    return Counter((item.get("status") or {}).get("phase", "None") for item in listed["items"])


def request_counts(kubeconfig: str) -> dict[tuple[str, str], float]:
    """Requests the API server has served since it started, by (verb, resource[/subresource])."""
    kubectl = ensure_binaries().path("kubectl")
    text = subprocess.run(
        [str(kubectl), "--kubeconfig", kubeconfig, "get", "--raw", "/metrics"],
        check=True, capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    counts: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("verb") in {"WATCH", "CONNECT"}:
            continue
        kind = (labels.get("verb", "?"), f"{labels.get('resource', '')}/{labels.get('subresource', '')}".rstrip("/"))
        counts[kind] = counts.get(kind, 0.0) + float(match["value"])
    return counts


def print_rates(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], seconds: float) -> None:
    rates = {kind: (n - before.get(kind, 0.0)) / seconds for kind, n in after.items()}
    shown = sorted(((rate, kind) for kind, rate in rates.items() if rate > 0), reverse=True)
    print(f"  API requests/s, every client, watches excluded: {sum(rates.values()):.2f}")
    for rate, (verb, resource) in shown:
        print(f"    {verb:7} {resource:40} {rate:7.2f}")


def print_reads(audit_log: Path, offset: int, seconds: float) -> None:
    """GETs and LISTs of the kinds turnout reads (the test ground's audit policy) after `offset` bytes of
    the audit log, per second by client (the user agent's product: turnout, kopf, kube-controller-manager)."""
    clients: Counter[str] = Counter()
    with audit_log.open() as log:
        log.seek(offset)
        for line in log:
            event = json.loads(line) if line.strip() else {}
            if event.get("stage") == "ResponseComplete":
                clients[str(event.get("userAgent", "")).split("/", 1)[0] or "?"] += 1
    total = sum(clients.values()) / seconds
    print(f"  reads/s (GET, LIST of pods, Services, Secrets, Deployments, backends) by client: {total:.2f}")
    for name, count in clients.most_common():
        print(f"    {name:48} {count / seconds:7.2f}")


def sum_metric(operator: OperatorProcess, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(f"{name}{{"))


if __name__ == "__main__":
    main()
