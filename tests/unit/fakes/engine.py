"""A real HTTP engine for the real checks: a test's aiohttp app on 127.0.0.1, whichever pod IP is asked.

The fake cluster's pods have addresses nothing listens on; `real_checks` makes the operator's check
rounds turnout's own `run_checks`, whose requests reach the app through a transport that only
changes where they connect. Everything else (headers, bodies, timeouts, errors) is real HTTP.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
from aiohttp import web

from tests.unit.fakes.operator import InProcessOperator
from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.kube.cluster import ClusterApi, KubeObject
from turnout.kube.observe import Checker, run_checks
from turnout.rollout.observed import CheckOutcome

HOST = "127.0.0.1"


class ToLocalEngine(httpx.AsyncBaseTransport):
    """Connects every request to 127.0.0.1:`port`; the request itself is sent as it was made."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(host=HOST, port=self._port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def real_run_checks(client: httpx.AsyncClient) -> Checker:
    """turnout's `run_checks`, over `client`."""

    async def checker(
        cluster: ClusterApi, backend: Backend, pods: Sequence[KubeObject], color: Color
    ) -> CheckOutcome | None:
        return await run_checks(cluster, backend, pods, color, client=client)

    return checker


@contextmanager
def real_checks(operator: InProcessOperator, app: web.Application) -> Iterator[None]:
    """While inside, the operator's check rounds are the real ones, against `app` served on 127.0.0.1."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    operator.run(runner.setup())
    try:
        operator.run(web.TCPSite(runner, HOST, 0).start())
        port = runner.addresses[0][1]
        client = httpx.AsyncClient(transport=ToLocalEngine(port), trust_env=False, follow_redirects=False)
        operator.checker = real_run_checks(client)
        try:
            yield
        finally:
            operator.checker = operator.checks
            operator.run(client.aclose())
    finally:
        operator.run(runner.cleanup())


def cut_over_checked_for_real(
    operator: InProcessOperator, app: web.Application, before: KubeObject, after: KubeObject, *, rounds: int = 10
) -> None:
    """Blue serves `before` (scripted checks); the spec becomes `after`, and green is checked for real,
    against `app`, until the revision fails (or `rounds` rounds have passed: AssertionError)."""
    operator.start_healthy(before)
    with real_checks(operator, app):
        operator.edit(after)
        operator.reconcile()
        operator.pods_ready(Color.GREEN)
        for _ in range(rounds):
            operator.advance(5)
            operator.reconcile()
            if operator.status().last_failed_revision is not None:
                return
    raise AssertionError(f"green never failed: {operator.status()}")


def vllm_listing(model_id_bytes: int) -> web.Application:
    """vLLM whose /v1/models lists one model id of `model_id_bytes`, made as it is sent (nothing held)."""

    async def health(_: web.Request) -> web.StreamResponse:
        return web.Response()

    async def models(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b"m" * 65536
        await response.write(b'{"object": "list", "data": [{"id": "')
        with contextlib.suppress(ConnectionError):  # the check stops reading at its bound
            for _ in range(model_id_bytes // len(chunk)):
                await response.write(chunk)
            await response.write(b"m" * (model_id_bytes % len(chunk)) + b'"}]}')
        return response

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    return app
