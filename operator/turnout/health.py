"""`/healthz`: whether this operator process should be left running.

A standby replica is healthy while it keeps trying for the Lease. The leader is healthy while
no reconcile has run past its budget: every API call has timeouts and every check and benchmark
its bound, so a reconcile that runs on and on is wedged, and the kubelet's liveness probe
restarting the process is the way out. The server is a stdlib one in a thread of its own, so it
answers even when the event loop does not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RECONCILE_BUDGET_SECONDS = 600.0
"""How long one reconcile may run (checks, reads, writes) before it counts as wedged; a benchmark's
own bound is added to it (`reconcile_budget`)."""


def reconcile_budget(spec: Mapping[str, Any]) -> float:
    """Seconds a reconcile of a backend with this raw spec may take: a benchmark runs two pods, one
    after the other, each within `rollout.benchmark.timeoutSeconds`."""
    benchmark = (spec.get("rollout") or {}).get("benchmark")
    extra = 2 * float(benchmark.get("timeoutSeconds") or 300) if isinstance(benchmark, Mapping) else 0.0
    return RECONCILE_BUDGET_SECONDS + extra


class Liveness:
    """The reconciles in flight, each with its start and budget; and, with leader election, the role."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], tuple[float, float]] = {}
        self.role: Callable[[], str | None] = lambda: None
        """A problem of the leader election, if any (set by the elector's owner)."""

    @contextmanager
    def reconciling(self, key: tuple[str, str], budget: float) -> Iterator[None]:
        with self._lock:
            self._running[key] = (self.clock(), budget)
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(key, None)

    def problem(self) -> str | None:
        """Why this process should be restarted, or None."""
        now = self.clock()
        with self._lock:
            running = dict(self._running)
        for (namespace, name), (started, budget) in sorted(running.items(), key=lambda item: item[1][0]):
            if now - started > budget:
                return f"the reconcile of {namespace}/{name} has run {now - started:.0f} s, past its {budget:.0f} s"
        return self.role()


def serve_health(liveness: Liveness, host: str, port: int) -> ThreadingHTTPServer:
    """Serve `GET /healthz` (200 `ok`, or 500 with the problem) in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/healthz":
                self.send_error(404)
                return
            problem = liveness.problem()
            body = (problem or "ok").encode() + b"\n"
            self.send_response(500 if problem else 200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a probe every few seconds is not news

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="turnout-health", daemon=True).start()
    return server


def standby_problem(elector: Any) -> str | None:
    """A leader-election problem: the elector has not tried for the Lease for a while (its loop died)."""
    last = elector.last_attempt
    if last is None or elector.clock() - last <= 5 * elector.retry + 30:
        return None
    return f"no attempt at the lease for {elector.clock() - last:.0f} s"
