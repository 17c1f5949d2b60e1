"""`/healthz` goes unhealthy when a reconcile runs past its budget, so the kubelet restarts a wedged operator."""

from __future__ import annotations

import httpx

from turnout.health import RECONCILE_BUDGET_SECONDS, Liveness, reconcile_budget, serve_health


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def healthz(port: int) -> tuple[int, str]:
    answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5, trust_env=False)
    return answer.status_code, answer.text.strip()


def test_healthz_fails_while_a_reconcile_is_wedged_and_recovers_when_it_ends() -> None:
    clock = Clock()
    liveness = Liveness(clock)
    server = serve_health(liveness, "127.0.0.1", 0)
    port = server.server_address[1]
    try:
        assert healthz(port) == (200, "ok")
        with liveness.reconciling(("ml", "chat"), budget=600):
            clock.now += 599
            assert healthz(port) == (200, "ok")
            clock.now += 2
            code, text = healthz(port)
            assert code == 500
            assert text == "the reconcile of ml/chat has run 601 s, past its 600 s"
        assert healthz(port) == (200, "ok")
    finally:
        server.shutdown()
        server.server_close()


def test_a_benchmark_widens_the_budget() -> None:
    assert reconcile_budget({}) == RECONCILE_BUDGET_SECONDS
    budget = reconcile_budget({"rollout": {"benchmark": {"timeoutSeconds": 900}}})
    assert budget == RECONCILE_BUDGET_SECONDS + 1800
