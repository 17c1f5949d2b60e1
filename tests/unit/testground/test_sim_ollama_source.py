"""The Ollama simulator's answers that come from Ollama's own source, at tag v0.12.6 (Ollama cannot
run here, so its source is the reference): each test names the file and function it follows.
hack/testground/README.md lists which answers are from source and which are assumed."""

import asyncio
import datetime
import json
import re
from collections.abc import Callable
from typing import Any

import httpx

from testground.engines import EngineConfig

PULLED = EngineConfig("ollama", ("llama3:8b", "chat"))
TEAM = EngineConfig("ollama", ("team/coder:7b",))
EMBED = EngineConfig("ollama", ("nomic-embed-text", "embed"), embedding_dimension=8)
HELLO = {"model": "chat", "messages": [{"role": "user", "content": "Say hello"}]}


def url(sim: Any, path: str) -> str:
    return f"http://{sim.host}:{sim.port}{path}"


def run(config: EngineConfig, running: Callable[..., Any], check: Callable[..., Any], behaviour: str = "") -> None:
    async def scenario() -> None:
        async with running(config, behaviour) as sim, httpx.AsyncClient(base_url=url(sim, "")) as client:
            await check(client)

    asyncio.run(scenario())


def events(text: str) -> list[Any]:
    """The SSE payloads of a stream, `[DONE]` as the string."""
    assert text.endswith("\n\n")
    found = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        payload = block.removeprefix("data: ")
        found.append(payload if payload == "[DONE]" else json.loads(payload))
    return found


def test_gins_own_404_and_405_as_plain_text(running: Callable[..., Any]) -> None:
    """server/routes.go: GenerateRoutes (gin, HandleMethodNotAllowed = true); gin v1.10.0 gin.go: serveError."""

    async def check(client: httpx.AsyncClient) -> None:
        missing = await client.get("/api/nothing")
        assert (missing.status_code, missing.text, missing.headers["content-type"]) == (
            404,
            "404 page not found",
            "text/plain",
        )
        wrong = await client.get("/api/pull")
        assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")

    run(PULLED, running, check)


def test_root_and_version_as_gin_writes_them(running: Callable[..., Any]) -> None:
    """server/routes.go: GenerateRoutes, `c.String` and `c.JSON` (gin adds `charset=utf-8`); HEAD answers too."""

    async def check(client: httpx.AsyncClient) -> None:
        root = await client.get("/")
        assert (root.text, root.headers["content-type"]) == ("Ollama is running", "text/plain; charset=utf-8")
        version = await client.get("/api/version")
        assert (version.json(), version.headers["content-type"]) == (
            {"version": "0.12.6"},
            "application/json; charset=utf-8",
        )
        assert (await client.head("/api/tags")).status_code == 200

    run(PULLED, running, check)


def test_tags_lists_the_most_recently_modified_first_with_listmodelresponses_keys(
    running: Callable[..., Any],
) -> None:
    """server/routes.go: ListHandler (sorted by ModifiedAt, newest first); api/types.go: ListModelResponse,
    ModelDetails (remote_model and remote_host omitted when empty)."""

    async def check(client: httpx.AsyncClient) -> None:
        models = (await client.get("/api/tags")).json()["models"]
        assert [m["name"] for m in models] == ["chat:latest", "llama3:8b"]
        assert set(models[0]) == {"name", "model", "modified_at", "size", "digest", "details"}
        assert set(models[0]["details"]) == {
            "parent_model",
            "format",
            "family",
            "families",
            "parameter_size",
            "quantization_level",
        }
        assert re.fullmatch(r"[0-9a-f]{64}", models[0]["digest"])  # the manifest's hex sha256, no prefix
        assert models[0]["modified_at"] > models[1]["modified_at"]
        await client.post("/api/copy", json={"source": "llama3:8b", "destination": "newer"})
        names = [m["name"] for m in (await client.get("/api/tags")).json()["models"]]
        assert names == ["newer:latest", "chat:latest", "llama3:8b"]

    run(PULLED, running, check)


def test_names_are_read_as_ollama_reads_them(running: Callable[..., Any]) -> None:
    """types/model/name.go: ParseName, DisplayShortest: the default host and namespace are dropped, a tag
    always shown; `chat` and `library/chat` are one model."""

    async def check(client: httpx.AsyncClient) -> None:
        chat = await client.post("/v1/chat/completions", json={**HELLO, "model": "library/chat"})
        assert (chat.status_code, chat.json()["model"]) == (200, "library/chat")
        await client.post("/api/pull", json={"model": "registry.ollama.ai/library/qwen2:0.5b"})
        names = [m["name"] for m in (await client.get("/api/tags")).json()["models"]]
        assert names[0] == "qwen2:0.5b"

    run(PULLED, running, check)


def test_openai_models_owned_by_the_namespace_without_a_charset(running: Callable[..., Any]) -> None:
    """openai/openai.go: ToListCompletion (owned_by is the name's namespace, created its ModifiedAt);
    middleware/openai.go: ListWriter sets `application/json`, Go's json.Encoder ends with a newline."""

    async def check(client: httpx.AsyncClient) -> None:
        listed = await client.get("/v1/models")
        assert listed.headers["content-type"] == "application/json"
        assert listed.text.endswith("}\n")
        assert [(m["id"], m["object"], m["owned_by"]) for m in listed.json()["data"]] == [
            ("team/coder:7b", "model", "team")
        ]
        tags = (await client.get("/api/tags")).json()["models"]
        assert listed.json()["data"][0]["created"] == int(
            datetime.datetime.fromisoformat(tags[0]["modified_at"]).timestamp()
        )

    run(TEAM, running, check)


def test_openai_models_is_null_data_when_no_model_is_there(running: Callable[..., Any]) -> None:
    """openai/openai.go: ToListCompletion appends to a nil slice, which Go encodes as null."""

    async def check(client: httpx.AsyncClient) -> None:
        assert (await client.get("/v1/models")).json() == {"object": "list", "data": None}

    run(PULLED, running, check, "never-serves-model")


def test_pull_streams_progress_and_omits_a_zero_completed(running: Callable[..., Any]) -> None:
    """server/routes.go: PullHandler, streamResponse (application/x-ndjson); server/images.go: PullModel's
    statuses; server/download.go: the `pulling <12 hex>` lines; api/types.go: ProgressResponse's omitempty."""

    async def check(client: httpx.AsyncClient) -> None:
        reply = await client.post("/api/pull", json={"model": "qwen2:0.5b"})
        assert reply.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in reply.text.splitlines()]
        assert [line["status"].split()[0] for line in lines] == [
            "pulling",
            "pulling",
            "pulling",
            "verifying",
            "writing",
            "success",
        ]
        first_layer = lines[1]
        assert set(first_layer) == {"status", "digest", "total"}
        assert first_layer["status"] == f"pulling {first_layer['digest'][7:19]}"
        assert lines[2]["completed"] == lines[2]["total"]

    run(PULLED, running, check)


def test_pull_without_streaming_answers_json_without_a_charset(running: Callable[..., Any]) -> None:
    """server/routes.go: waitForStream sets `application/json` before gin's c.JSON, which keeps it."""

    async def check(client: httpx.AsyncClient) -> None:
        reply = await client.post("/api/pull", json={"model": "qwen2:0.5b", "stream": False})
        assert (reply.status_code, reply.json(), reply.headers["content-type"]) == (
            200,
            {"status": "success"},
            "application/json",
        )

    run(PULLED, running, check)


def test_a_failed_pull_ends_its_stream_with_an_error_line_or_answers_500(running: Callable[..., Any]) -> None:
    """server/images.go: PullModel ("pull model manifest: %s" of os.ErrNotExist, after "pulling manifest");
    server/routes.go: streamResponse (an error after content is one more line), waitForStream (500)."""

    async def check(client: httpx.AsyncClient) -> None:
        streamed = await client.post("/api/pull", json={"model": "chat"})
        assert streamed.status_code == 200
        assert [json.loads(line) for line in streamed.text.splitlines()] == [
            {"status": "pulling manifest"},
            {"error": "pull model manifest: file does not exist"},
        ]
        once = await client.post("/api/pull", json={"model": "chat", "stream": False})
        assert (once.status_code, once.json()) == (500, {"error": "pull model manifest: file does not exist"})

    run(PULLED, running, check, "never-serves-model")


def test_pull_refuses_no_body_and_an_invalid_name(running: Callable[..., Any]) -> None:
    """server/routes.go: PullHandler ("missing request body" for io.EOF, errtypes.InvalidModelNameErrMsg);
    types/errtypes/errtypes.go: "invalid model name"."""

    async def check(client: httpx.AsyncClient) -> None:
        empty = await client.post("/api/pull", content=b"")
        assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})
        nameless = await client.post("/api/pull", json={})
        assert (nameless.status_code, nameless.json()) == (400, {"error": "invalid model name"})
        bad = await client.post("/api/pull", json={"model": "-dash"})
        assert (bad.status_code, bad.json()) == (400, {"error": "invalid model name"})

    run(PULLED, running, check)


def test_copy_answers_as_copyhandler(running: Callable[..., Any]) -> None:
    """server/routes.go: CopyHandler: %q in its messages, 404 for a missing source, 200 with no body;
    getExistingName finds the source regardless of case."""

    async def check(client: httpx.AsyncClient) -> None:
        missing = await client.post("/api/copy", json={"source": "nope", "destination": "x"})
        assert (missing.status_code, missing.json()) == (404, {"error": 'model "nope" not found'})
        nowhere = await client.post("/api/copy", json={"source": "chat"})
        assert (nowhere.status_code, nowhere.json()) == (400, {"error": 'destination "" is invalid'})
        bad = await client.post("/api/copy", json={"source": "a b", "destination": "x"})
        assert (bad.status_code, bad.json()) == (400, {"error": 'source "a b" is invalid'})
        copied = await client.post("/api/copy", json={"source": "CHAT", "destination": "alias"})
        assert (copied.status_code, copied.content) == (200, b"")

    run(PULLED, running, check)


def test_show_answers_as_showhandler(running: Callable[..., Any]) -> None:
    """server/routes.go: ShowHandler (`model '%s' not found`, `model is required`, `missing request body`);
    api/types.go: ShowResponse's keys; server/images.go: Capabilities (`completion`, `embedding`)."""

    async def check(client: httpx.AsyncClient) -> None:
        shown = await client.post("/api/show", json={"model": "chat"})
        assert shown.status_code == 200
        body = shown.json()
        assert {"modelfile", "template", "details", "model_info", "capabilities", "modified_at"} <= set(body)
        assert body["capabilities"] == ["completion"]
        assert (await client.post("/api/show", json={"name": "LLAMA3:8b"})).status_code == 200  # any case, `name`
        absent = await client.post("/api/show", json={"model": "mistral"})
        assert (absent.status_code, absent.json()) == (404, {"error": "model 'mistral' not found"})
        unnamed = await client.post("/api/show", json={})
        assert (unnamed.status_code, unnamed.json()) == (400, {"error": "model is required"})
        empty = await client.post("/api/show")
        assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})

    run(PULLED, running, check)

    async def embedding(client: httpx.AsyncClient) -> None:
        assert (await client.post("/api/show", json={"model": "embed"})).json()["capabilities"] == ["embedding"]

    run(EMBED, running, embedding)


def test_a_chat_completion_has_ollamas_keys_and_id(running: Callable[..., Any]) -> None:
    """openai/openai.go: ChatCompletion, Choice (no logprobs), ToChatCompletion (fp_ollama, the model as asked);
    middleware/openai.go: ChatMiddleware (id `chatcmpl-` and rand.Intn(999)), ChatWriter (`application/json`)."""

    async def check(client: httpx.AsyncClient) -> None:
        reply = await client.post("/v1/chat/completions", json=HELLO)
        assert reply.headers["content-type"] == "application/json"
        body = reply.json()
        assert set(body) == {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}
        assert re.fullmatch(r"chatcmpl-\d{1,3}", body["id"])
        assert (body["object"], body["model"], body["system_fingerprint"]) == ("chat.completion", "chat", "fp_ollama")
        (choice,) = body["choices"]
        assert set(choice) == {"index", "message", "finish_reason"}
        assert (choice["message"]["role"], choice["finish_reason"]) == ("assistant", "stop")
        assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}

    run(PULLED, running, check)


def test_a_stream_carries_the_role_on_every_chunk_and_ends_with_an_empty_one(running: Callable[..., Any]) -> None:
    """openai/openai.go: ToChunk (delta role "assistant" on each chunk, no logprobs); runner/ollamarunner/
    runner.go: completion (the last answer is done and empty); llm/server.go: Completion (no empty chunk
    before the first token); middleware/openai.go: ChatWriter (usage chunk with no choices, then [DONE])."""

    async def check(client: httpx.AsyncClient) -> None:
        asked = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}
        reply = await client.post("/v1/chat/completions", json=asked)
        assert reply.headers["content-type"] == "text/event-stream"
        assert "cache-control" not in reply.headers
        *chunks, usage, done = events(reply.text)
        assert done == "[DONE]"
        assert all(set(c) == {"id", "object", "created", "model", "system_fingerprint", "choices"} for c in chunks)
        deltas = [c["choices"][0]["delta"] for c in chunks]
        assert all(d["role"] == "assistant" and d["content"] for d in deltas[:-1])
        assert deltas[-1] == {"role": "assistant", "content": ""}
        assert [set(c["choices"][0]) for c in chunks] == [{"index", "delta", "finish_reason"}] * len(chunks)
        assert [c["choices"][0]["finish_reason"] for c in chunks][-2:] == [None, "stop"]
        assert (usage["choices"], set(usage["usage"])) == ([], {"prompt_tokens", "completion_tokens", "total_tokens"})
        assert len({c["id"] for c in [*chunks, usage]}) == 1

    run(PULLED, running, check)


def test_chat_errors_have_ollamas_messages_and_types(running: Callable[..., Any]) -> None:
    """middleware/openai.go: ChatMiddleware (its own 400s: invalid_request_error) and writeError (a handler's
    error is NewError(500, ...): api_error, whatever its status); server/routes.go: ChatHandler
    ("model is required", "model '%s' not found"); openai/openai.go: NewError, Error."""

    async def check(client: httpx.AsyncClient) -> None:
        async def error(body: Any = None, content: bytes | None = None) -> tuple[int, str, str, str]:
            reply = await client.post("/v1/chat/completions", json=body, content=content)
            found = reply.json()["error"]
            assert set(found) == {"message", "type", "param", "code"}
            return reply.status_code, found["type"], found["message"], reply.headers["content-type"]

        assert await error({**HELLO, "model": "mistral"}) == (
            404,
            "api_error",
            "model 'mistral' not found",
            "application/json",
        )
        assert (await error({**HELLO, "model": "CHAT"}))[:2] == (404, "api_error")  # a file name: case counts
        assert (await error({"messages": HELLO["messages"]}))[:3] == (400, "api_error", "model is required")
        assert (await error({"model": "chat"}))[:3] == (400, "invalid_request_error", "[] is too short - 'messages'")
        assert (await error({"model": "chat", "messages": "hi"}))[2] == (
            "json: cannot unmarshal string into Go struct field ChatCompletionRequest.messages of type []openai.Message"
        )
        assert (await error(content=b""))[:3] == (400, "invalid_request_error", "EOF")

    run(PULLED, running, check)


def test_api_embed_answers_as_embedhandler(running: Callable[..., Any]) -> None:
    """server/routes.go: EmbedHandler ("invalid input type"; an empty input answers no vectors once the model
    is found), handleScheduleError (404 "model %q not found, try pulling it first"); api/types.go:
    EmbedResponse (durations and prompt_eval_count omitted when 0)."""

    async def check(client: httpx.AsyncClient) -> None:
        own = await client.post("/api/embed", json={"model": "embed", "input": ["a b", "c"]})
        assert set(own.json()) == {"model", "embeddings", "total_duration", "load_duration", "prompt_eval_count"}
        assert own.json()["load_duration"] > 0
        nothing = await client.post("/api/embed", json={"model": "embed", "input": ""})
        assert (nothing.status_code, nothing.json()) == (200, {"model": "embed", "embeddings": []})
        missing = await client.post("/api/embed", json={"model": "other", "input": "x"})
        said = 'model "other" not found, try pulling it first'
        assert (missing.status_code, missing.json()) == (404, {"error": said})
        bad = await client.post("/api/embed", json={"model": "embed", "input": [1]})
        assert (bad.status_code, bad.json()) == (400, {"error": "invalid input type"})
        anycase = await client.post("/api/embed", json={"model": "EMBED", "input": "x"})
        assert anycase.status_code == 200  # getExistingName: the name is looked up regardless of case

    run(EMBED, running, check)


def test_a_chat_models_embedding_fails_in_ollamas_engine(running: Callable[..., Any]) -> None:
    """runner/ollamarunner/runner.go: embeddings (501 "this model does not support embeddings" for a model
    without pooling); server/routes.go: EmbedHandler answers the runner's error 500."""

    async def check(client: httpx.AsyncClient) -> None:
        reply = await client.post("/api/embed", json={"model": "chat", "input": "x"})
        assert (reply.status_code, reply.json()) == (500, {"error": "this model does not support embeddings"})
        openai = await client.post("/v1/embeddings", json={"model": "chat", "input": "x"})
        assert (openai.status_code, openai.json()["error"]["type"]) == (500, "api_error")

    run(PULLED, running, check)


def test_openai_embeddings_as_the_middleware_shapes_them(running: Callable[..., Any]) -> None:
    """middleware/openai.go: EmbeddingsMiddleware ("" is [""], none or [] is 400 "invalid input"), EmbedWriter;
    openai/openai.go: ToEmbeddingList (the model as asked, usage of prompt and total tokens)."""

    async def check(client: httpx.AsyncClient) -> None:
        reply = await client.post("/v1/embeddings", json={"model": "embed", "input": ""})
        assert reply.headers["content-type"] == "application/json"
        body = reply.json()
        assert (set(body), body["model"], len(body["data"])) == ({"object", "data", "model", "usage"}, "embed", 1)
        assert set(body["usage"]) == {"prompt_tokens", "total_tokens"}
        for empty in ({"model": "embed"}, {"model": "embed", "input": []}):
            refused = await client.post("/v1/embeddings", json=empty)
            assert (refused.status_code, refused.json()["error"]["message"]) == (400, "invalid input")
            assert refused.json()["error"]["type"] == "invalid_request_error"
        missing = await client.post("/v1/embeddings", json={"model": "other", "input": "x"})
        assert (missing.status_code, missing.json()["error"]["type"]) == (404, "api_error")

    run(EMBED, running, check)


def test_max_tokens_is_the_only_limit_read(running: Callable[..., Any]) -> None:
    """openai/openai.go: ChatCompletionRequest (no max_completion_tokens), FromChatRequest (max_tokens is
    num_predict); runner/ollamarunner/runner.go: a sequence cut at num_predict is done with "length"."""

    async def check(client: httpx.AsyncClient) -> None:
        cut = (await client.post("/v1/chat/completions", json={**HELLO, "max_tokens": 2})).json()
        assert (cut["usage"]["completion_tokens"], cut["choices"][0]["finish_reason"]) == (2, "length")
        whole = (await client.post("/v1/chat/completions", json={**HELLO, "max_completion_tokens": 2})).json()
        assert whole["choices"][0]["finish_reason"] == "stop"

    run(PULLED, running, check)
