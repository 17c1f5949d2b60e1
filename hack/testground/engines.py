"""The HTTP side of the engine simulators: one aiohttp app per engine, over a shared `EngineState`.

The apps speak the endpoints turnout checks and clients call, shaped like the real engines:

- vLLM (OpenAI server): `/health`, `/metrics`, `/v1/models`, `/v1/chat/completions` (JSON or SSE),
  `/v1/embeddings`.
  With an API key, `/v1/*` needs `Authorization: Bearer <key>` (401 `{"error": "Unauthorized"}`),
  `/health` and `/metrics` do not. An unknown model name is a 404 `NotFoundError`; a body vLLM's
  request model refuses (not JSON, not an object, no `messages`) a 400 `Bad Request` whose `param`
  names the place (`body.31`, `body.messages`); a path it has no route for FastAPI's 404
  `{"detail": "Not Found"}`. Its answers have vLLM's shapes, field for field (the null fields its
  response models always serialise, `system_fingerprint` on a completion and on a stream's last
  chunk, `finish_reason` on the last token's chunk) and content types (`application/json` without a
  charset, `text/event-stream; charset=utf-8`): tests/engine/test_simulator_fidelity.py compares
  them with the real server's.
- Ollama: `/`, `/api/version`, `/api/tags` (names always `name:tag`), `/api/pull` (NDJSON progress),
  `/api/copy`, `/api/embed`, and the OpenAI-compatible `/v1/models`, `/v1/chat/completions`,
  `/v1/embeddings`. No auth.

Embeddings (`EngineConfig.embedding_dimension`, annotation `sim.turnout.dev/embedding-dimension`):
a model with a dimension answers each input (a string or a list of them) with a vector of that many
floats, the same for the same text, of length 1 (as embedding models normalise them), in OpenAI's
shape (`data[].embedding`) or Ollama's (`/api/embed`: `embeddings[]`). A model without one is a
chat model: vLLM answers 404 `{"detail": "Not Found"}` (vLLM 0.32.0 registers its embedding routes
only for a model that supports the embed task, so its `/metrics` counts the request under
`handler="none"`), Ollama 400 ("does not support embeddings").
The degradation's added latency and error ratio apply to embedding requests as to chat
completions; vLLM's `/metrics` counts them under `handler="/v1/embeddings"`, with their latency
(vLLM records a pooling request's end-to-end latency and, at its prefill, its time to first token).

Behaviours as each engine shows them:

- `never-serves-model`: vLLM answers `/health` but `/v1/models` lists nothing and completions are
  404 (a real vLLM rather stays unbound while loading, which is `slow-start`/`refuse`; this mode is
  for "the server is up but the name is absent"). Ollama answers `/` and `/api/version`, `/api/tags`
  is empty and `/api/pull` ends with an error line, as when the registry lacks the model.
- `wrong-model`: both list only `other-model` (Ollama: `other-model:latest`).
- `fail-after:N`: after N s every endpoint answers 503, like an engine whose worker died.

Degradation (`behaviour.Degradation`, annotations `sim.turnout.dev/error-ratio`,
`sim.turnout.dev/latency`, `sim.turnout.dev/ttft`, `sim.turnout.dev/tokens-per-second` and
`sim.turnout.dev/jitter`) shapes the chat completions of either engine: each waits the added
latency, then the given share of them answers 500 with the engine's error body; the others stream
their first token after the ttft and the next ones at the pace (SSE, one token per chunk, the role
chunk just before the first token as vLLM sends it, `usage` in a last chunk when
`stream_options.include_usage` is set), or answer at once as a whole when they would have ended.
The reply is a fixed sentence cut to `max_tokens`; with vLLM's `ignore_eos: true` it goes on to
exactly `max_tokens` tokens (its words again), as `vllm bench serve --ignore-eos` asks.

Both count the chat completions they received, and serve the count on a simulator-only endpoint,
`GET /sim/requests` (neither guarded by the API key nor counted in `/metrics`):
`{"chatCompletions": received, "streamed": of them with `"stream": true`, "inFlight": now,
"mostInFlight": at most at once}`, since start (the checks' smoke request is not streamed; a
benchmark's requests are).

vLLM's `/metrics` counts what the simulator really served, as vLLM would (`vllm_metrics`): every
request by route and status group, and for each chat completion its end-to-end latency, its time
to first token and how it finished (`error` for a 500 of the error ratio).

Binding (`slow-start`, `refuse`) is not the app's business: see `simulator`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from testground.behaviour import WRONG_MODEL_NAME, Behaviour, Degradation, Mode
from testground.vllm_metrics import VllmMetrics

Engine = Literal["vllm", "ollama"]
ENGINES: tuple[Engine, ...] = ("vllm", "ollama")

OLLAMA_VERSION = "0.12.6"
# vLLM's `system_fingerprint` (`--fingerprint-mode full`): its version and 8 hex digits of its config's hash.
VLLM_FINGERPRINT = "vllm-0.32.0-5177a7e1"
_REPLY = "Hello! This is a simulated reply from the turnout test ground."
_FAILED = "The engine failed to finish the request (sim.turnout.dev/error-ratio)."
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def ollama_tag(name: str) -> str:
    """Ollama's spelling of a model name: `llama3` is `llama3:latest`, `llama3:8b` stays."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


@dataclass(frozen=True)
class EngineConfig:
    """What one simulated engine serves.

    `models`: vLLM's served names (`--served-model-name`, else `--model`); Ollama's models present
    at start (normalised to `name:tag`). `root`: vLLM's `--model`. `api_key`: vLLM's key, or None.
    """

    engine: Engine
    models: tuple[str, ...]
    root: str = ""
    api_key: str | None = field(default=None, repr=False)
    embedding_dimension: int | None = None
    """The length of the vectors the model answers embedding requests with; None: a chat model."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the key included: it only travels over the simhost's stdin)."""
        return {
            "engine": self.engine,
            "models": list(self.models),
            "root": self.root,
            "api_key": self.api_key,
            "embedding_dimension": self.embedding_dimension,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EngineConfig:
        """The inverse of `to_json`; raises ValueError on an unknown engine."""
        engine = data["engine"]
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; accepted: {', '.join(ENGINES)}")
        return cls(
            engine,
            tuple(data.get("models") or ()),
            data.get("root") or "",
            data.get("api_key"),
            data.get("embedding_dimension"),
        )


class EngineState:
    """The mutable state behind one simulator: its behaviour and degradation, its models, its counters.

    It outlives the aiohttp app, which is rebuilt on every bind (after `slow-start`, `refuse`).
    """

    def __init__(self, config: EngineConfig, behaviour: Behaviour, degradation: Degradation | None = None) -> None:
        self.config = config
        self.behaviour = behaviour
        self.since = time.monotonic()
        self.degradation = degradation or Degradation()
        self.completions = 0  # chat completions since the degradation was set
        self.received = 0  # chat completions received since start, whatever their answer
        self.streamed = 0  # of them, those asking for a stream
        self.embeddings = 0  # embedding requests received since start, on any of the engine's endpoints
        self.in_flight = 0
        self.most_in_flight = 0
        self.idle = asyncio.Event()  # set while no chat completion is in flight
        self.idle.set()
        self._random = random.Random()
        models = config.models
        self.models: list[str] = [ollama_tag(m) for m in models] if config.engine == "ollama" else list(models)
        self.created = int(time.time())
        # Counted for either engine; only vLLM serves them (Ollama has no metrics endpoint).
        self.metrics = VllmMetrics(self.models[0] if self.models else "")

    def set_behaviour(self, behaviour: Behaviour) -> None:
        """Switch behaviour now; `fail-after:N` counts N from this moment."""
        self.behaviour = behaviour
        self.since = time.monotonic()

    def set_degradation(self, degradation: Degradation) -> None:
        """Worsen (or mend) the chat completions from now on; the error ratio counts from this moment."""
        self.degradation = degradation
        self.completions = 0

    async def degrade(self) -> bool:
        """One chat completion: wait the added latency; True when it is one the error ratio fails."""
        if self.degradation.latency_seconds:
            await asyncio.sleep(self.degradation.latency_seconds)
        self.completions += 1
        errors = self.degradation.errors_among
        return errors(self.completions) > errors(self.completions - 1)

    def waits(self, tokens: int) -> list[float]:
        """Seconds before each of a reply's `tokens` tokens, from the previous one, as the pace says."""
        return self.degradation.waits(tokens, self._random.uniform)

    def counts(self) -> dict[str, int]:
        """What `GET /sim/requests` answers."""
        return {
            "chatCompletions": self.received,
            "streamed": self.streamed,
            "inFlight": self.in_flight,
            "mostInFlight": self.most_in_flight,
            "embeddings": self.embeddings,
        }

    def failing(self) -> bool:
        """True once a `fail-after:N` simulator's N seconds have passed."""
        b = self.behaviour
        return b.mode is Mode.FAIL_AFTER and time.monotonic() - self.since >= b.seconds

    def visible_models(self) -> list[str]:
        """The names the engine lists right now, as the behaviour bends them."""
        mode = self.behaviour.mode
        if mode is Mode.NEVER_SERVES_MODEL:
            return []
        if mode is Mode.WRONG_MODEL:
            return [ollama_tag(WRONG_MODEL_NAME) if self.config.engine == "ollama" else WRONG_MODEL_NAME]
        return list(self.models)

    def resolve(self, requested: str) -> str | None:
        """The listed model a request's name refers to, or None (Ollama adds `:latest`)."""
        name = ollama_tag(requested) if self.config.engine == "ollama" else requested
        return name if name in self.visible_models() else None


def build_app(state: EngineState) -> web.Application:
    """A fresh aiohttp app for the state's engine."""
    app = vllm_app(state) if state.config.engine == "vllm" else ollama_app(state)
    # Outermost: every chat completion received is counted, before any guard may refuse it.
    app.middlewares.insert(0, _counting(state))
    return app


SIM_REQUESTS_PATH = "/sim/requests"
EMBEDDING_PATHS = frozenset({"/v1/embeddings", "/api/embed"})


def _counting(state: EngineState) -> Callable[[web.Request, _Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def count(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.path == SIM_REQUESTS_PATH and request.method == "GET":
            return web.json_response(state.counts())
        if request.path in EMBEDDING_PATHS and request.method == "POST":
            state.embeddings += 1
            return await handler(request)
        if request.path != "/v1/chat/completions" or request.method != "POST":
            return await handler(request)
        state.received += 1
        # Awaited first: `x += await f()` reads x before the await, and concurrent requests would
        # overwrite each other's counts.
        streamed = await _asks_stream(request)
        state.streamed += streamed
        state.in_flight += 1
        state.idle.clear()
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            return await handler(request)
        finally:
            state.in_flight -= 1
            if not state.in_flight:
                state.idle.set()

    return count


async def _asks_stream(request: web.Request) -> bool:
    """The request's JSON body says `"stream": true` (the body stays readable for the handler)."""
    try:
        body = await request.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("stream") is True


def vllm_app(state: EngineState) -> web.Application:
    """vLLM's OpenAI server: /health, /metrics, /v1/models, /v1/chat/completions, /v1/embeddings."""

    @web.middleware
    async def guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "none"
        if state.failing():
            response: web.StreamResponse = _vllm_error("The engine is dead.", "ServiceUnavailableError", 503)
        elif _refused(request, state.config.api_key):
            # Not counted: vLLM's API key middleware runs outside its metrics middleware.
            return _vllm_json({"error": "Unauthorized"}, 401)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as refused:
                if refused.status not in (404, 405):
                    state.metrics.answered(request.method, route, refused.status)
                    raise
                # No such route (or method): FastAPI's answer, `{"detail": "Not Found"}`.
                response = _vllm_json({"detail": refused.reason}, refused.status)
        state.metrics.answered(request.method, route, response.status)
        return response

    async def health(_: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    async def models(_: web.Request) -> web.StreamResponse:
        cards = [
            {
                "id": name,
                "object": "model",
                "created": state.created,
                "owned_by": "vllm",
                "root": state.config.root or name,
                "parent": None,
                "max_model_len": 8192,
                "permission": [
                    {
                        "id": f"modelperm-{uuid.uuid4().hex[:16]}",
                        "object": "model_permission",
                        "created": state.created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for name in state.visible_models()
        ]
        return _vllm_json({"object": "list", "data": cards})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await _vllm_chat_request(request)
        if isinstance(body, web.Response):
            return body
        listed = state.visible_models()
        requested = body.get("model") or (listed[0] if listed else "")
        if state.resolve(requested) is None:
            return _unknown_vllm_model(requested, listed)
        started = time.monotonic()
        if await state.degrade():
            state.metrics.finished(time.monotonic() - started, "error")
            return _vllm_error(_FAILED, "InternalServerError", 500)
        return await _chat_completion(request, state, body, requested, fingerprint=VLLM_FINGERPRINT, started=started)

    async def embeddings(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        texts = _embedding_inputs(body)
        if body is None or texts is None:
            return _vllm_error("'input' must be a string or a list of strings.", "BadRequestError", 400)
        listed = state.visible_models()
        requested = body.get("model") or (listed[0] if listed else "")
        if state.resolve(requested) is None:
            return _unknown_vllm_model(requested, listed)
        dimension = state.config.embedding_dimension
        assert dimension is not None, "the route is registered for an embedding model only"
        started = time.monotonic()
        if await state.degrade():
            state.metrics.finished(time.monotonic() - started, "error")
            return _vllm_error(_FAILED, "InternalServerError", 500)
        tokens = sum(len(text.split()) for text in texts)
        state.metrics.first_token(time.monotonic() - started)
        state.metrics.finished(time.monotonic() - started, "stop", tokens)
        return _vllm_json(
            {
                "id": f"embd-{uuid.uuid4().hex}",
                "object": "list",
                "created": int(time.time()),
                "model": requested,
                "data": [
                    {"index": i, "object": "embedding", "embedding": embedding_vector(text, dimension)}
                    for i, text in enumerate(texts)
                ],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
            }
        )

    async def metrics(_: web.Request) -> web.StreamResponse:
        # vLLM serves prometheus-client's own, as this does (the same library): its header says the format.
        return web.Response(body=state.metrics.text(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(middlewares=[guard])
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    if state.config.embedding_dimension is not None:
        # vLLM 0.32.0 registers its embedding routes only for a model that supports the embed task;
        # a chat model's /v1/embeddings is FastAPI's 404, counted under handler "none".
        app.router.add_post("/v1/embeddings", embeddings)
    return app


def ollama_app(state: EngineState) -> web.Application:
    """Ollama's server: /, /api/version, /api/tags, /api/pull, /api/copy, /api/embed, /v1/models,
    /v1/chat/completions, /v1/embeddings."""

    @web.middleware
    async def guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if state.failing():
            return web.json_response({"error": "service unavailable"}, status=503)
        return await handler(request)

    async def root(_: web.Request) -> web.StreamResponse:
        return web.Response(text="Ollama is running")

    async def version(_: web.Request) -> web.StreamResponse:
        return web.json_response({"version": OLLAMA_VERSION})

    async def tags(_: web.Request) -> web.StreamResponse:
        return web.json_response({"models": [_ollama_tag_entry(n) for n in state.visible_models()]})

    async def pull(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request) or {}
        requested = body.get("model") or body.get("name")
        if not isinstance(requested, str) or not requested:
            return web.json_response({"error": "model is required"}, status=400)
        name = ollama_tag(requested)
        failed = state.behaviour.mode is Mode.NEVER_SERVES_MODEL
        digest = _digest(name)
        size = _size(name)
        progress: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        if failed:
            progress.append({"error": "pull model manifest: file does not exist"})
        else:
            progress += [
                {"status": f"pulling {digest[7:19]}", "digest": digest, "total": size, "completed": 0},
                {"status": f"pulling {digest[7:19]}", "digest": digest, "total": size, "completed": size},
                {"status": "verifying sha256 digest"},
                {"status": "writing manifest"},
                {"status": "success"},
            ]
            if name not in state.models:
                state.models.append(name)
        if body.get("stream", True) is False:
            return web.json_response(progress[-1], status=500 if failed else 200)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for line in progress:
            await response.write(json.dumps(line).encode() + b"\n")
        await response.write_eof()
        return response

    async def copy(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request) or {}
        source, destination = body.get("source"), body.get("destination")
        if not isinstance(source, str) or not isinstance(destination, str) or not destination:
            return web.json_response({"error": "source and destination are required"}, status=400)
        if state.resolve(source) is None:
            return web.json_response({"error": f"model '{source}' not found"}, status=404)
        if ollama_tag(destination) not in state.models:
            state.models.append(ollama_tag(destination))
        return web.Response(status=200)

    async def models(_: web.Request) -> web.StreamResponse:
        data = [
            {"id": n, "object": "model", "created": state.created, "owned_by": "library"}
            for n in state.visible_models()
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await _json_body(request)
        if body is None or not isinstance(body.get("messages"), list):
            return _openai_error("invalid message format", "invalid_request_error", 400)
        requested = body.get("model")
        if not isinstance(requested, str) or state.resolve(requested) is None:
            return _openai_error(f'model "{requested}" not found, try pulling it first', "not_found_error", 404)
        started = time.monotonic()
        if await state.degrade():
            return _openai_error(_FAILED, "api_error", 500)
        return await _chat_completion(request, state, body, requested, fingerprint="fp_ollama", started=started)

    async def embed(request: web.Request) -> web.StreamResponse:
        """Ollama's own: `{"model", "input"}` in, `{"model", "embeddings": [[...]], ...}` out."""
        body = await _json_body(request)
        texts = _embedding_inputs(body)
        if body is None or texts is None:
            return web.json_response({"error": "invalid input type"}, status=400)
        requested = body.get("model")
        if not isinstance(requested, str) or state.resolve(requested) is None:
            return web.json_response({"error": f'model "{requested}" not found, try pulling it first'}, status=404)
        dimension = state.config.embedding_dimension
        if dimension is None:
            return web.json_response({"error": f'"{requested}" does not support embeddings'}, status=400)
        started = time.monotonic()
        if await state.degrade():
            return web.json_response({"error": _FAILED}, status=500)
        return web.json_response(
            {
                "model": requested,
                "embeddings": [embedding_vector(text, dimension) for text in texts],
                "total_duration": int((time.monotonic() - started) * 1e9),
                "load_duration": 0,
                "prompt_eval_count": sum(len(text.split()) for text in texts),
            }
        )

    async def openai_embeddings(request: web.Request) -> web.StreamResponse:
        """Ollama's OpenAI-compatible embeddings: OpenAI's shape, the model named as the client named it."""
        body = await _json_body(request)
        texts = _embedding_inputs(body)
        if body is None or texts is None:
            return _openai_error("invalid input type", "invalid_request_error", 400)
        requested = body.get("model")
        if not isinstance(requested, str) or state.resolve(requested) is None:
            return _openai_error(f'model "{requested}" not found, try pulling it first', "not_found_error", 404)
        dimension = state.config.embedding_dimension
        if dimension is None:
            return _openai_error(f'"{requested}" does not support embeddings', "invalid_request_error", 400)
        if await state.degrade():
            return _openai_error(_FAILED, "api_error", 500)
        tokens = sum(len(text.split()) for text in texts)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "embedding": embedding_vector(text, dimension), "index": i}
                    for i, text in enumerate(texts)
                ],
                "model": requested,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", root)
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/api/pull", pull)
    app.router.add_post("/api/copy", copy)
    app.router.add_post("/api/embed", embed)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", openai_embeddings)
    return app


def embedding_vector(text: str, dimension: int) -> list[float]:
    """A vector of `dimension` floats of length 1, the same for the same text, from its SHA-256."""
    seed = hashlib.sha256(text.encode()).digest()
    generator = random.Random(seed)
    raw = [generator.gauss(0.0, 1.0) for _ in range(dimension)]
    norm = sum(x * x for x in raw) ** 0.5 or 1.0
    return [x / norm for x in raw]


def _embedding_inputs(body: dict[str, Any] | None) -> list[str] | None:
    """The texts of an embedding request's `input` (a string, or a non-empty list of strings); None otherwise."""
    found = body.get("input") if body is not None else None
    if isinstance(found, str):
        return [found]
    if isinstance(found, list) and found and all(isinstance(text, str) for text in found):
        return list(found)
    return None


async def _chat_completion(
    request: web.Request, state: EngineState, body: dict[str, Any], model: str, fingerprint: str | None, started: float
) -> web.StreamResponse:
    """An OpenAI chat completion of a fixed reply, cut to `max_tokens` words (with `ignore_eos`: exactly
    that many), paced as the state's degradation says; SSE when `stream`.

    Its time to first token and end-to-end latency count from `started` (`time.monotonic()`).
    """
    natural = _REPLY.split()
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if not (isinstance(limit, int) and limit > 0):
        limit = None
    ignore_eos = limit is not None and body.get("ignore_eos") is True and state.config.engine == "vllm"
    words = [natural[i % len(natural)] for i in range(limit)] if ignore_eos and limit else natural[:limit]
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"] if isinstance(m, dict))
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(words),
        "total_tokens": prompt_tokens + len(words),
    }
    finish = "length" if ignore_eos or len(words) < len(natural) else "stop"
    vllm = state.config.engine == "vllm"
    head: dict[str, Any] = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}
    if fingerprint and not vllm:
        head["system_fingerprint"] = fingerprint  # on every chunk; vLLM's goes on its last one only
    paced = _Pace(state.waits(len(words)))
    if not body.get("stream"):
        await paced.token(0)
        state.metrics.first_token(time.monotonic() - started)
        for index in range(1, len(words)):
            await paced.token(index)
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(words)}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        state.metrics.finished(time.monotonic() - started, finish, prompt_tokens, len(words))
        answer = {**head, "object": "chat.completion", "choices": [choice]}
        if not vllm:
            return web.json_response({**answer, "usage": usage})
        # vLLM's response model serialises every optional field, null when unused.
        message |= dict.fromkeys(("refusal", "annotations", "audio", "function_call", "reasoning"))
        choice |= {"stop_reason": None, "token_ids": None, "routed_experts": None}
        usage |= {"prompt_tokens_details": None, "completion_tokens_details": None}
        answer |= {"service_tier": None, "system_fingerprint": fingerprint, "usage": usage}
        answer |= dict.fromkeys(("prompt_logprobs", "prompt_token_ids", "prompt_text", "kv_transfer_params"))
        answer |= dict.fromkeys(("ec_transfer_params", "metrics"))
        return _vllm_json(answer)

    content_type = "text/event-stream; charset=utf-8" if vllm else "text/event-stream"
    response = web.StreamResponse(headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
    await response.prepare(request)

    async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    for index, word in enumerate(words):
        await paced.token(index)
        if index == 0:
            first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            if vllm:
                await send([{**first, "logprobs": None}], prompt_token_ids=None, prompt_text=None)
            else:
                await send([first])
            state.metrics.first_token(time.monotonic() - started)
        delta = {"content": word if index == 0 else f" {word}"}
        if not vllm:
            await send([{"index": 0, "delta": delta, "finish_reason": None}])
            continue
        # vLLM ends with the last token's chunk; the fingerprint goes on the final chunk (usage's, if asked).
        last = index == len(words) - 1
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish if last else None}
        choice |= {"stop_reason": None, "token_ids": None} if last else {"token_ids": None}
        stamp = {"system_fingerprint": fingerprint} if last and not include_usage else {}
        await send([choice], **stamp)
    if not vllm:
        await send([{"index": 0, "delta": {}, "finish_reason": finish}])
    if include_usage:
        await send([], usage=usage, **({"system_fingerprint": fingerprint} if vllm else {}))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    state.metrics.finished(time.monotonic() - started, finish, prompt_tokens, len(words))
    return response


class _Pace:
    """When each token of one reply is due: on a schedule from its start, so the waits' rounding
    (asyncio's timers run late by a little) never adds up over a long reply."""

    def __init__(self, waits: list[float]) -> None:
        self._loop = asyncio.get_running_loop()
        self._due = list(itertools.accumulate(waits, initial=self._loop.time()))[1:]

    async def token(self, index: int) -> None:
        """Wait until token `index` is due (at once when there is no such token or no pace)."""
        if index < len(self._due):
            delay = self._due[index] - self._loop.time()
            if delay > 0:
                await asyncio.sleep(delay)


def _refused(request: web.Request, key: str | None) -> bool:
    """Whether vLLM's API key guard refuses `request`: a `/v1` path without `Bearer <key>`."""
    if not key or not request.path.startswith("/v1") or request.method == "OPTIONS":
        return False
    given = request.headers.get("Authorization", "")
    return not hmac.compare_digest(given.encode(), f"Bearer {key}".encode())


async def _json_body(request: web.Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _vllm_json(data: Any, status: int = 200) -> web.Response:
    """A JSON answer as vLLM's FastAPI sends it: `application/json`, no charset parameter."""
    return web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json")


def _vllm_error(message: str, kind: str, status: int, param: str | None = None) -> web.Response:
    return _vllm_json({"error": {"message": message, "type": kind, "param": param, "code": status}}, status)


def _unknown_vllm_model(requested: str, listed: list[str]) -> web.Response:
    message = f"The model `{requested}` does not exist. Valid aliases: {', '.join(listed)}."
    return _vllm_error(message, "NotFoundError", 404, "model")


async def _vllm_chat_request(request: web.Request) -> dict[str, Any] | web.Response:
    """A chat completion request's body, or vLLM's 400 for one its request model refuses: not JSON,
    not an object, `messages` absent or not a list (the pydantic error, as vLLM words it)."""
    raw = await request.text()
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as error:
        invalid = {"type": "json_invalid", "loc": f"body.{error.pos}", "msg": "JSON decode error"}
        return _validation_error({**invalid, "input": "<dict of 0 items>", "ctx": {"error": error.msg}})
    if not isinstance(body, dict):
        message = "Input should be a valid dictionary or object to extract fields from"
        described = f"<{type(body).__name__} of {len(body)} items>" if isinstance(body, list) else repr(body)
        return _validation_error({"type": "model_attributes_type", "loc": "body", "msg": message, "input": described})
    if "messages" not in body:
        missing = {"type": "missing", "loc": "body.messages", "msg": "Field required"}
        return _validation_error({**missing, "input": f"<dict of {len(body)} items>"})
    if not isinstance(body["messages"], list):
        wrong = {"type": "list_type", "loc": "body.messages", "msg": "Input should be a valid list"}
        return _validation_error({**wrong, "input": repr(body["messages"])[:80]})
    return body


def _validation_error(error: dict[str, Any]) -> web.Response:
    """vLLM's 400 for a request its pydantic model refuses: the error's place is its `param`."""
    return _vllm_error(f"1 validation error:\n  {error}", "Bad Request", 400, error["loc"])


def _openai_error(message: str, kind: str, status: int) -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind, "param": None, "code": None}}, status=status)


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _size(name: str) -> int:
    # Deterministic and plausible: 1-5 GB, like a quantised 8B model.
    return 1_000_000_000 + int(_digest(name)[7:15], 16) % 4_000_000_000


def _ollama_tag_entry(name: str) -> dict[str, Any]:
    family = name.rsplit("/", 1)[-1].split(":")[0]
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-01-01T00:00:00Z",
        "size": _size(name),
        "digest": _digest(name)[7:],
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": "8.0B",
            "quantization_level": "Q4_K_M",
        },
    }
