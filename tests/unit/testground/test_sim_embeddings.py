"""What a client of a simulated embedding model sees, on either engine's endpoints, and which pods get one."""

import asyncio
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from testground.engines import EngineConfig
from testground.podspec import EMBEDDING_DIMENSION_ANNOTATION, PodConfigError, pod_sim
from tests.unit.testground.test_sim_podspec import OLLAMA, VLLM, pod

VLLM_EMBED = EngineConfig("vllm", ("embed",), root="/data/models/nomic", embedding_dimension=768)
OLLAMA_EMBED = EngineConfig("ollama", ("nomic-embed-text", "embed"), embedding_dimension=768)
VLLM_CHAT = EngineConfig("vllm", ("chat",))
OLLAMA_CHAT = EngineConfig("ollama", ("llama3:8b", "chat"))


def url(sim: Any, path: str) -> str:
    return f"http://{sim.host}:{sim.port}{path}"


def is_unit_vector(vector: list[float], dimension: int) -> bool:
    return (
        len(vector) == dimension
        and all(isinstance(x, float) for x in vector)
        and math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-9)
    )


def test_vllm_answers_openai_embeddings_of_its_dimension(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(VLLM_EMBED) as sim, httpx.AsyncClient() as client:
            reply = await client.post(url(sim, "/v1/embeddings"), json={"model": "embed", "input": ["a b", "c"]})
            assert reply.status_code == 200
            body = reply.json()
            assert (body["object"], body["model"]) == ("list", "embed")
            assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", 0), ("embedding", 1)]
            assert all(is_unit_vector(d["embedding"], 768) for d in body["data"])
            assert body["usage"]["prompt_tokens"] == 3
            again = await client.post(url(sim, "/v1/embeddings"), json={"model": "embed", "input": "a b"})
            assert again.json()["data"][0]["embedding"] == body["data"][0]["embedding"]  # same text, same vector
            wrong = await client.post(url(sim, "/v1/embeddings"), json={"model": "other", "input": "a"})
            assert (wrong.status_code, wrong.json()["error"]["type"]) == (404, "NotFoundError")
            metrics = (await client.get(url(sim, "/metrics"))).text
            assert 'handler="/v1/embeddings"' in metrics
            counts = (await client.get(url(sim, "/sim/requests"))).json()
            assert (counts["embeddings"], counts["chatCompletions"]) == (3, 0)

    asyncio.run(scenario())


def test_ollama_answers_api_embed_and_openai_embeddings_under_the_alias(running: Callable[..., Any]) -> None:
    async def scenario() -> None:
        async with running(OLLAMA_EMBED) as sim, httpx.AsyncClient() as client:
            own = await client.post(url(sim, "/api/embed"), json={"model": "embed", "input": "hello"})
            assert own.status_code == 200
            assert own.json()["model"] == "embed"
            (vector,) = own.json()["embeddings"]
            assert is_unit_vector(vector, 768)
            openai = await client.post(url(sim, "/v1/embeddings"), json={"model": "embed", "input": "hello"})
            assert openai.status_code == 200
            assert openai.json()["object"] == "list"
            assert openai.json()["data"][0]["embedding"] == vector
            missing = await client.post(url(sim, "/api/embed"), json={"model": "other", "input": "x"})
            assert missing.status_code == 404
            bad = await client.post(url(sim, "/api/embed"), json={"model": "embed", "input": 3})
            assert bad.status_code == 400

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("config", "path", "status", "said"),
    [
        (VLLM_CHAT, "/v1/embeddings", 404, "Not Found"),
        (OLLAMA_CHAT, "/api/embed", 500, "this model does not support embeddings"),
    ],
)
def test_a_chat_model_refuses_embeddings(
    running: Callable[..., Any], config: EngineConfig, path: str, status: int, said: str
) -> None:
    async def scenario() -> None:
        async with running(config) as sim, httpx.AsyncClient() as client:
            reply = await client.post(url(sim, path), json={"model": "chat", "input": "x"})
            assert reply.status_code == status
            assert said in reply.text

    asyncio.run(scenario())


def test_the_annotation_sets_the_dimension_on_either_engine() -> None:
    for container in (VLLM, OLLAMA):
        found = pod_sim(pod(container, {EMBEDDING_DIMENSION_ANNOTATION: "1024"}))
        assert found is not None
        assert found.config().embedding_dimension == 1024
        plain = pod_sim(pod(container))
        assert plain is not None
        assert plain.config().embedding_dimension is None
        # Another dimension is another model: the simulator is replaced, not updated.
        assert found.live_update(plain) is None
    with pytest.raises(PodConfigError, match="embedding-dimension"):
        pod_sim(pod(VLLM, {EMBEDDING_DIMENSION_ANNOTATION: "wide"}))


def test_the_config_travels_to_the_simhost_with_its_dimension() -> None:
    assert EngineConfig.from_json(VLLM_EMBED.to_json()) == VLLM_EMBED
