"""The engine-aware checks against real HTTP servers on 127.0.0.1: the test ground's engine
simulators, and a few small apps for what a simulator never does (stall, fail only the completion)."""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from testground.behaviour import Behaviour
from testground.engines import Engine as SimulatedEngine
from testground.engines import EngineConfig, EngineState, build_app
from tests.unit.fakes.engine import vllm_listing
from turnout.api.spec import Engine
from turnout.checks import CheckRound, CheckTarget, check_round

HOST = "127.0.0.1"
KEY = "sk-test-4f9a1c-never-print-me"
T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


def simulator(
    engine: SimulatedEngine, models: tuple[str, ...] = ("chat",), behaviour: str = "healthy", api_key: str | None = None
) -> web.Application:
    config = EngineConfig(engine, models, api_key=api_key)
    return build_app(EngineState(config, Behaviour.parse(behaviour)))


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1 at a free port, yield the port, stop it afterwards."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    try:
        await web.TCPSite(runner, HOST, 0).start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@asynccontextmanager
async def stalling() -> AsyncIterator[int]:
    """A server that accepts connections and never answers, like an engine stuck in a GC pause."""
    release = asyncio.Event()

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hold, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        release.set()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A port nothing listens on: bound once to learn a free one, then released."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


def fake_vllm(chat: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.Application:
    """vLLM's /health and /v1/models serving "chat", with a chat completion handler of the test's."""

    async def health(_: web.Request) -> web.StreamResponse:
        return web.Response()

    async def models(_: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": "chat", "object": "model"}]})

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


def answering(routes: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]) -> web.Application:
    """An app that answers GET on each path of `routes` with its handler, and 404 elsewhere."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    return app


def check_app(engine: Engine, app: web.Application) -> CheckRound:
    """One round of `engine`'s checks against `app`, served on a free port."""

    async def scenario() -> CheckRound:
        async with serving(app) as port:
            return await check(engine, port)

    return run(scenario())


async def check(
    engine: Engine,
    port: int,
    *,
    served_name: str = "chat",
    api_key: str | None = None,
    smoke_request: bool = False,
    timeout_seconds: float = 2.0,
    **kwargs: Any,
) -> CheckRound:
    target = CheckTarget(pod="chat-green-7d9", ip=HOST, port=port)
    return await check_round(
        engine,
        served_name,
        [target],
        api_key=api_key,
        timeout_seconds=timeout_seconds,
        smoke_request=smoke_request,
        **kwargs,
    )


def test_vllm_healthy_passes_with_smoke_request() -> None:
    async def scenario() -> CheckRound:
        async with serving(simulator("vllm")) as port:
            return await check(Engine.VLLM, port, smoke_request=True)

    result = run(scenario())
    assert result.passed, result.message
    assert result.message == ""
    assert [(r.pod, r.ok, r.message) for r in result.results] == [("chat-green-7d9", True, "")]
    assert result.results[0].latency_seconds > 0


def test_the_checks_name_turnout_in_their_user_agent() -> None:
    """An engine's access log (and the simulator's count by client) tells turnout's checks from probes and clients."""

    async def scenario() -> dict[str, Any]:
        state = EngineState(EngineConfig("vllm", ("chat",)), Behaviour.parse("healthy"))
        async with serving(build_app(state)) as port:
            assert (await check(Engine.VLLM, port, smoke_request=True)).passed
        return state.counts()

    counts = run(scenario())
    assert list(counts["firstRequest"]) == list(counts["firstAnswered"]) == ["turnout"]
    assert counts["chatCompletions"] == 1


def test_vllm_wrong_served_name_fails_naming_the_missing_model() -> None:
    async def scenario() -> CheckRound:
        async with serving(simulator("vllm", behaviour="wrong-model")) as port:
            return await check(Engine.VLLM, port)

    result = run(scenario())
    assert not result.passed
    assert result.message == f'pod chat-green-7d9 ({HOST}): /v1/models lacks "chat" (serves "other-model")'


def test_vllm_without_any_model_says_so() -> None:
    async def scenario() -> CheckRound:
        async with serving(simulator("vllm", behaviour="never-serves-model")) as port:
            return await check(Engine.VLLM, port)

    result = run(scenario())
    assert not result.passed
    assert result.results[0].message == '/v1/models lacks "chat" (serves no model yet)'


def test_vllm_connection_refused_fails() -> None:
    result = run(check(Engine.VLLM, closed_port()))
    assert not result.passed
    assert result.results[0].message.startswith("/health: connection refused")


def test_vllm_dead_engine_fails_on_health() -> None:
    async def scenario() -> CheckRound:
        async with serving(simulator("vllm", behaviour="fail-after:0")) as port:
            return await check(Engine.VLLM, port)

    result = run(scenario())
    assert not result.passed
    assert result.results[0].message == "/health answered 503: The engine is dead."


def test_vllm_api_key_refused_then_accepted_and_never_shown() -> None:
    async def scenario() -> tuple[CheckRound, CheckRound, CheckRound]:
        async with serving(simulator("vllm", api_key=KEY)) as port:
            return (
                await check(Engine.VLLM, port, api_key=None),
                await check(Engine.VLLM, port, api_key="sk-wrong-key"),
                await check(Engine.VLLM, port, api_key=KEY, smoke_request=True),
            )

    missing, wrong, right = run(scenario())
    assert not missing.passed
    assert missing.results[0].message == (
        "/v1/models answered 401: the engine wants an API key and none is set (spec.vllm.apiKeySecretRef)"
    )
    assert not wrong.passed
    assert wrong.results[0].message == "/v1/models answered 401: the API key was refused"
    assert "sk-wrong-key" not in wrong.message
    assert right.passed, right.message
    for round_ in (missing, wrong, right):
        assert KEY not in repr(round_)


def test_a_401_from_an_engine_without_api_key_points_at_no_vllm_field() -> None:
    async def refuse(_: web.Request) -> web.StreamResponse:
        return web.Response(status=401)

    result = check_app(Engine.OLLAMA, answering({"/api/tags": refuse}))
    assert not result.passed
    assert result.results[0].message == (
        "/api/tags answered 401: the engine wants an API key, and turnout has none to send to this engine"
    )


def test_api_key_echoed_by_an_engine_is_masked() -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": f"bad header {request.headers['Authorization']}"}}, status=500)

    async def scenario() -> CheckRound:
        async with serving(fake_vllm(echo)) as port:
            return await check(Engine.VLLM, port, api_key=KEY, smoke_request=True)

    result = run(scenario())
    assert not result.passed
    assert KEY not in repr(result)
    assert result.results[0].message == "/v1/chat/completions answered 500: bad header Bearer ***"


def test_smoke_request_failing_fails_the_round() -> None:
    async def broken(_: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"error": {"message": "CUDA out of memory", "type": "InternalServerError"}}, status=500
        )

    async def scenario() -> tuple[CheckRound, CheckRound]:
        async with serving(fake_vllm(broken)) as port:
            return await check(Engine.VLLM, port), await check(Engine.VLLM, port, smoke_request=True)

    without_smoke, with_smoke = run(scenario())
    assert without_smoke.passed
    assert not with_smoke.passed
    assert with_smoke.results[0].message == "/v1/chat/completions answered 500: CUDA out of memory"


def test_smoke_request_without_choices_fails() -> None:
    async def empty(_: web.Request) -> web.StreamResponse:
        return web.json_response({"id": "x", "object": "chat.completion"})

    async def scenario() -> CheckRound:
        async with serving(fake_vllm(empty)) as port:
            return await check(Engine.VLLM, port, smoke_request=True)

    result = run(scenario())
    assert not result.passed
    assert result.results[0].message == '/v1/chat/completions answered 200 without "choices"'


@pytest.mark.parametrize(
    ("body", "headers", "message"),
    [
        ("<html>loading</html>", {}, "/v1/models answered 200 with something other than JSON"),
        ("[]", {}, "/v1/models answered 200 with JSON that is not an object"),
        ('{"object": "list"}', {}, '/v1/models answered JSON without a "data" list'),
        # Nested past what a JSON parser can follow, and compressed (inflated before it could be counted).
        ("[" * 100_000 + "]" * 100_000, {}, "/v1/models answered 200 with something other than JSON"),
        (
            '{"data": []}',
            {"Content-Encoding": "gzip"},
            "/v1/models answered with a compressed body, which turnout did not ask for",
        ),
    ],
    ids=["html", "list", "no-data", "nested-too-deep", "compressed"],
)
def test_malformed_answers_fail_with_a_message(body: str, headers: dict[str, str], message: str) -> None:
    async def models(_: web.Request) -> web.StreamResponse:
        return web.Response(text=body, headers=headers)

    async def health(_: web.Request) -> web.StreamResponse:
        return web.Response()

    result = check_app(Engine.VLLM, answering({"/health": health, "/v1/models": models}))
    assert not result.passed
    assert result.results[0].message == message


def test_ollama_untagged_name_matches_latest() -> None:
    async def scenario() -> CheckRound:
        async with serving(simulator("ollama", models=("chat:latest",))) as port:
            return await check(Engine.OLLAMA, port, served_name="chat", smoke_request=True)

    result = run(scenario())
    assert result.passed, result.message


def test_ollama_tagged_name_is_compared_as_is() -> None:
    async def scenario() -> tuple[CheckRound, CheckRound]:
        async with serving(simulator("ollama", models=("llama3:8b",))) as port:
            return (
                await check(Engine.OLLAMA, port, served_name="llama3:8b"),
                await check(Engine.OLLAMA, port, served_name="llama3"),
            )

    tagged, untagged = run(scenario())
    assert tagged.passed, tagged.message
    assert not untagged.passed
    assert untagged.results[0].message == '/api/tags lacks "llama3:latest" (has "llama3:8b")'


def test_ollama_root_answering_without_the_model_fails() -> None:
    async def scenario() -> tuple[int, CheckRound]:
        async with (
            serving(simulator("ollama", behaviour="never-serves-model")) as port,
            httpx.AsyncClient(trust_env=False) as client,
        ):
            root = await client.get(f"http://{HOST}:{port}/")
            return root.status_code, await check(Engine.OLLAMA, port, client=client)

    root_status, result = run(scenario())
    assert root_status == 200
    assert not result.passed
    assert result.results[0].message == '/api/tags lacks "chat:latest" (has no model yet)'


def test_timeout_counts_as_failure() -> None:
    async def scenario() -> CheckRound:
        async with stalling() as port:
            return await check(Engine.VLLM, port, timeout_seconds=0.2)

    result = run(scenario())
    assert not result.passed
    assert result.results[0].message == "/health: no answer within 0.2s"
    assert 0.2 <= result.results[0].latency_seconds < 2


def test_one_bad_pod_of_two_fails_the_round_and_names_it() -> None:
    async def scenario() -> CheckRound:
        async with serving(simulator("vllm")) as good, serving(simulator("vllm", behaviour="wrong-model")) as bad:
            targets = [CheckTarget("chat-green-a", HOST, good), CheckTarget("chat-green-b", HOST, bad)]
            return await check_round(Engine.VLLM, "chat", targets, api_key=None, timeout_seconds=2, smoke_request=True)

    result = run(scenario())
    assert not result.passed
    assert result.message == f'pod chat-green-b ({HOST}): /v1/models lacks "chat" (serves "other-model")'
    assert [(r.pod, r.ok) for r in result.results] == [("chat-green-a", True), ("chat-green-b", False)]


def test_no_targets_does_not_pass() -> None:
    result = run(check_round(Engine.VLLM, "chat", [], api_key=None, timeout_seconds=1, smoke_request=False))
    assert result == CheckRound(passed=False, message="no Ready pods to check", results=())


def test_a_given_client_is_left_open() -> None:
    async def scenario() -> tuple[CheckRound, bool]:
        async with serving(simulator("vllm")) as port, httpx.AsyncClient(trust_env=False) as client:
            result = await check(Engine.VLLM, port, client=client)
            return result, client.is_closed

    result, closed = run(scenario())
    assert result.passed, result.message
    assert not closed


def test_each_pod_latency_is_recorded_per_engine() -> None:
    def count() -> float:
        return REGISTRY.get_sample_value("turnout_check_latency_seconds_count", {"engine": "ollama"}) or 0.0

    async def scenario() -> CheckRound:
        async with serving(simulator("ollama")) as a, serving(simulator("ollama")) as b:
            targets = [CheckTarget("chat-blue-a", HOST, a), CheckTarget("chat-blue-b", HOST, b)]
            return await check_round(
                Engine.OLLAMA, "chat", targets, api_key=None, timeout_seconds=2, smoke_request=False
            )

    before = count()
    assert run(scenario()).passed
    assert count() == before + 2


def test_a_huge_answer_is_cut_and_fails_without_the_operator_holding_it() -> None:
    tracemalloc.start()
    try:
        result = check_app(Engine.VLLM, vllm_listing(400 * 1024 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not result.passed
    assert result.results[0].message == "/v1/models answered with more than 1024 KiB, more than a check reads"
    assert peak < 50 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_a_long_model_id_is_cut_in_the_message() -> None:
    async def models(_: web.Request) -> web.StreamResponse:
        return web.json_response({"data": [{"id": "m" * 900_000}, {"id": "other"}]})

    async def health(_: web.Request) -> web.StreamResponse:
        return web.Response()

    result = check_app(Engine.VLLM, answering({"/health": health, "/v1/models": models}))
    assert not result.passed
    assert result.results[0].message == '/v1/models lacks "chat" (serves "' + "m" * 80 + '…", "other")'


def test_a_key_echoed_where_the_excerpt_is_cut_leaves_no_part_of_it() -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        # Cut at 200 characters before masking, the message would end in the key's first 8.
        text = "x" * 185 + request.headers["Authorization"]
        return web.json_response({"error": {"message": text}}, status=500)

    async def scenario() -> CheckRound:
        async with serving(fake_vllm(echo)) as port:
            return await check(Engine.VLLM, port, api_key=KEY, smoke_request=True)

    result = run(scenario())
    assert not result.passed
    assert KEY[:6] not in repr(result)
    assert result.results[0].message == "/v1/chat/completions answered 500: " + "x" * 185 + "Bearer ***"


@pytest.mark.parametrize(
    ("key", "error"),
    [(f"{KEY}\n", "LocalProtocolError"), (f"{KEY}é", "UnicodeEncodeError")],
    ids=["newline", "non-ascii"],
)
def test_a_header_the_http_client_refuses_fails_without_quoting_it(key: str, error: str) -> None:
    async def scenario() -> CheckRound:
        async with serving(simulator("vllm", api_key=KEY)) as port:
            return await check(Engine.VLLM, port, api_key=key)

    result = run(scenario())
    assert not result.passed
    assert result.results[0].message == f"/v1/models: the request failed ({error})"
    assert KEY not in repr(result)


def tags(*names: str) -> web.Application:
    """Ollama's /api/tags listing `names` as Ollama lists them."""

    async def listing(_: web.Request) -> web.StreamResponse:
        return web.json_response({"models": [{"name": name, "model": name} for name in names]})

    return answering({"/api/tags": listing})


@pytest.mark.parametrize(
    ("listed", "served_name"),
    [
        ("chat:latest", "library/chat:latest"),
        ("chat:latest", "registry.ollama.ai/library/chat"),
        ("Chat:latest", "chat"),
        ("team/chat:v1", "Team/Chat:V1"),
    ],
)
def test_ollama_names_are_compared_as_ollama_compares_them(listed: str, served_name: str) -> None:
    async def scenario() -> CheckRound:
        async with serving(tags("llama3:8b", listed)) as port:
            return await check(Engine.OLLAMA, port, served_name=served_name)

    result = run(scenario())
    assert result.passed, result.message


def test_ollama_lacking_the_model_names_it_as_ollama_lists_it() -> None:
    async def scenario() -> CheckRound:
        async with serving(tags("chat:8b", "team/chat:latest")) as port:
            return await check(Engine.OLLAMA, port, served_name="registry.ollama.ai/library/chat")

    result = run(scenario())
    assert not result.passed
    assert result.results[0].message == '/api/tags lacks "chat:latest" (has "chat:8b", "team/chat:latest")'
