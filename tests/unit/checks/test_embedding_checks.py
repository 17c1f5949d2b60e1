"""The checks of an embedding model, against the test ground's simulators: each engine is asked on its
own endpoint, the vectors' length is reported, and an answer that is no vector fails with a message."""

from __future__ import annotations

import pytest
from aiohttp import web

from testground.behaviour import Behaviour
from testground.engines import EngineConfig, EngineState, build_app
from tests.unit.checks.test_engine_checks import HOST, KEY, run, serving
from turnout.api.spec import Engine, Task
from turnout.checks import CheckRound, CheckTarget, check_round


def embedding_simulator(engine: str, dimension: int | None, api_key: str | None = None) -> web.Application:
    names = ("embed",) if engine == "vllm" else ("nomic-embed-text", "embed")
    config = EngineConfig(engine, names, api_key=api_key, embedding_dimension=dimension)  # type: ignore[arg-type]
    return build_app(EngineState(config, Behaviour.parse("healthy")))


def check_embeddings(engine: Engine, *apps: web.Application, api_key: str | None = None) -> CheckRound:
    async def scenario() -> CheckRound:
        ports = []
        async with serving(apps[0]) as first:
            ports.append(first)
            if len(apps) == 1:
                return await round_of(engine, ports, api_key)
            async with serving(apps[1]) as second:
                ports.append(second)
                return await round_of(engine, ports, api_key)

    return run(scenario())


async def round_of(engine: Engine, ports: list[int], api_key: str | None) -> CheckRound:
    targets = [CheckTarget(pod=f"embed-green-{i}", ip=HOST, port=port) for i, port in enumerate(ports)]
    return await check_round(
        engine, "embed", targets, api_key=api_key, timeout_seconds=2, smoke_request=False, task=Task.EMBEDDING
    )


@pytest.mark.parametrize("engine", [Engine.VLLM, Engine.OLLAMA])
def test_an_embedding_model_passes_with_its_dimension(engine: Engine) -> None:
    result = check_embeddings(engine, embedding_simulator(engine.value, 768))
    assert (result.passed, result.message, result.embedding_dimension) == (True, "", 768)
    assert result.results[0].embedding_dimension == 768


def test_the_api_key_goes_with_vllms_embedding_request() -> None:
    result = check_embeddings(Engine.VLLM, embedding_simulator("vllm", 384, api_key=KEY), api_key=KEY)
    assert (result.passed, result.embedding_dimension) == (True, 384)


@pytest.mark.parametrize(
    ("engine", "said"),
    [
        (Engine.VLLM, '/v1/embeddings answered 404: {"detail": "Not Found"}'),
        (Engine.OLLAMA, "/api/embed answered 500: this model does not support embeddings"),
    ],
)
def test_a_chat_model_behind_an_embedding_backend_fails_saying_so(engine: Engine, said: str) -> None:
    result = check_embeddings(engine, embedding_simulator(engine.value, None))
    assert not result.passed
    assert said in result.message
    assert result.embedding_dimension is None


def test_pods_answering_different_lengths_fail_the_round() -> None:
    result = check_embeddings(Engine.VLLM, embedding_simulator("vllm", 768), embedding_simulator("vllm", 1024))
    assert not result.passed
    assert "pods answer vectors of different lengths (pod embed-green-0 768, pod embed-green-1 1024)" in result.message


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"data": []}, "/v1/embeddings answered 200 without data[0]"),
        ({"data": [{"embedding": []}]}, "data[0].embedding that is not a vector"),
        ({"data": [{"embedding": "0.1,0.2"}]}, "data[0].embedding that is not a vector"),
        ({"data": [{"embedding": [0.1, "x", True]}]}, "data[0].embedding holding something other than numbers"),
        ({"object": "list"}, "/v1/embeddings answered 200 without data"),
    ],
)
def test_an_answer_that_is_no_vector_fails_naming_where(answer: object, said: str) -> None:
    async def health(_: web.Request) -> web.StreamResponse:
        return web.Response()

    async def models(_: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": "embed", "object": "model"}]})

    async def embeddings(_: web.Request) -> web.StreamResponse:
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/embeddings", embeddings)
    result = check_embeddings(Engine.VLLM, app)
    assert not result.passed
    assert said in result.message
