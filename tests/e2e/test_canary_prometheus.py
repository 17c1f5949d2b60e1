"""Canary steps judged by the team's own Prometheus (`analysis.metrics`), on a real control plane.

A Prometheus server of the test's own (Debian's package, on this host) scrapes the engine pods'
`/metrics` every second; the test lists the pods as its targets with the labels a team's Kubernetes
discovery would give them (namespace, pod, color, revision), as pods come and go.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from testground.prometheus import PrometheusServer
from tests.e2e.harness import FAST_ROLLOUT, Backends, EndpointClient, InBackground, OperatorProcess
from tests.e2e.test_canary import NEW_MODEL, annotated, canary_spec, revision
from turnout.api.labels import BACKEND_LABEL, COLOR_LABEL, REVISION_LABEL

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("simulated_engines")]

CHAT = 'handler="/v1/chat/completions",namespace="{{ namespace }}",revision="{{ canaryRevision }}"'
# A canary without a single 5xx has no 5xx series: `or vector(0)` makes that a 0, not no data.
ERROR_RATIO = (
    f'(sum(rate(http_requests_total{{status="5xx",{CHAT}}}[10s])) or vector(0))'
    f" / sum(rate(http_requests_total{{{CHAT}}}[10s]))"
)
# No smoke request: a check's own chat completion could draw one of the 500s; the clients' traffic is judged.
CHECKS = {**FAST_ROLLOUT["checks"], "smokeRequest": False}
FAILED = re.compile(r"metric error-ratio = (0\.\d+) > max 0\.05 \(thresholdRange of analysis\.metrics\)")


class PodTargets(InBackground):
    """Keeps Prometheus' targets to the backend's Ready pods, labelled as Kubernetes discovery would."""

    def __init__(self, backends: Backends, prometheus: PrometheusServer) -> None:
        super().__init__()
        self.backends = backends
        self.prometheus = prometheus

    def loop(self, stop: threading.Event) -> None:
        written: list[tuple[list[str], dict[str, str]]] | None = None
        while not stop.is_set():
            pods = self.backends.core.list_namespaced_pod(
                self.backends.namespace, label_selector=f"{BACKEND_LABEL}=chat"
            )
            groups = []
            for pod in pods.items:
                ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
                if not ready or not pod.status.pod_ip:
                    continue
                port = pod.spec.containers[0].ports[0].container_port
                labels = pod.metadata.labels or {}
                groups.append(
                    (
                        [f"{pod.status.pod_ip}:{port}"],
                        {
                            "namespace": self.backends.namespace,
                            "pod": pod.metadata.name,
                            "color": labels.get(COLOR_LABEL, ""),
                            "revision": labels.get(REVISION_LABEL, ""),
                        },
                    )
                )
            groups.sort(key=lambda group: group[1]["pod"])
            if groups != written:
                self.prometheus.set_targets(groups)
                written = groups
            stop.wait(0.5)


def judged_by_prometheus(prometheus: PrometheusServer, steps: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    """A canary of 2 replicas whose only real limit is the 5xx share Prometheus computes for it."""
    metric = {
        "name": "error-ratio",
        "prometheus": {"address": prometheus.address, "query": ERROR_RATIO},
        "thresholdRange": {"max": 0.05},
    }
    # maxErrorRatio 1: turnout's own scrape of the pods lets everything through; only the metric can fail it.
    analysis = {"maxErrorRatio": 1, "minRequests": 10, "metrics": [metric]}
    return canary_spec(steps, replicas=2, checks=CHECKS, canary={"analysis": analysis}, **more)


def test_a_canary_answering_5xx_is_aborted_by_the_prometheus_metric_with_its_value(
    operator: OperatorProcess, backends: Backends, prometheus: PrometheusServer
) -> None:
    steps = [{"setWeight": 50}, {"pause": {}}]
    with PodTargets(backends, prometheus):
        backends.create("chat", judged_by_prometheus(prometheus, steps))
        backends.wait_phase("chat", "Healthy", timeout=90)
        new = annotated(
            judged_by_prometheus(prometheus, steps, model=NEW_MODEL), **{"sim.turnout.dev/error-ratio": "0.2"}
        )
        with EndpointClient(backends, "chat"):
            backends.replace_spec("chat", new)
            status = backends.wait_failure("chat", timeout=120)
    assert status["lastFailureReason"] == "AnalysisFailed", status
    message = status["lastFailureMessage"]
    found = FAILED.search(message)
    assert found, message
    assert 0.1 <= float(found.group(1)) <= 0.3, message
    assert "analysis.maxErrorRatio" not in message
    assert backends.service_selector("chat")["turnout.dev/color"] == "blue"
    assert status["lastFailedRevision"] == revision(backends, new)


def test_a_healthy_canary_with_the_prometheus_metric_in_range_completes(
    operator: OperatorProcess, backends: Backends, prometheus: PrometheusServer
) -> None:
    # The pause keeps judging, so the verdict with the metric stays in the status to be read.
    steps = [{"setWeight": 50}, {"pause": {}}]

    def metric_in_range(status: dict[str, Any]) -> dict[str, Any] | None:
        analysis = (status.get("canary") or {}).get("analysis") or {}
        passed = analysis.get("outcome") == "Pass" and status.get("phase") == "Paused"
        return analysis if passed and "metric error-ratio = 0 within [, 0.05]" in analysis.get("message", "") else None

    with PodTargets(backends, prometheus):
        backends.create("chat", judged_by_prometheus(prometheus, steps))
        backends.wait_phase("chat", "Healthy", timeout=90)
        new = judged_by_prometheus(prometheus, steps, model=NEW_MODEL)
        new_revision = revision(backends, new)
        with EndpointClient(backends, "chat") as clients:
            backends.replace_spec("chat", new)
            analysis = backends.wait("chat", metric_in_range, timeout=120, what="a pass with the metric in range")
            backends.annotate("chat", {"turnout.dev/promote": f"{new_revision}/1"})
            backends.wait_status("chat", timeout=60, phase="Healthy", activeRevision=new_revision)
    assert analysis["metrics"] == [{"name": "error-ratio", "value": 0}], analysis
    assert not clients.failures, clients.failures[:3]
