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
- Ollama: `/`, `/api/version`, `/api/tags` (names as Ollama spells them, always `name:tag`, the most
  recently modified first), `/api/pull` (NDJSON progress), `/api/copy`, `/api/embed`, and the
  OpenAI-compatible `/v1/models`, `/v1/chat/completions`, `/v1/embeddings`. No auth. Status codes,
  content types, keys, stream framing and error messages and types follow Ollama 0.12.6's source
  (gin's `c.JSON` with a charset, its OpenAI writers without one; a stream chunk a token, each delta
  with the role, the last one empty); hack/testground/README.md lists each answer's origin, from
  source or assumed.

Embeddings (`EngineConfig.embedding_dimension`, annotation `sim.turnout.dev/embedding-dimension`):
a model with a dimension answers each input (a string or a list of them) with a vector of that many
floats, the same for the same text, of length 1 (as embedding models normalise them), in OpenAI's
shape (`data[].embedding`) or Ollama's (`/api/embed`: `embeddings[]`). A model without one is a
chat model: vLLM answers 404 `{"detail": "Not Found"}` (vLLM 0.32.0 registers its embedding routes
only for a model that supports the embed task, so its `/metrics` counts the request under
`handler="none"`), Ollama 500 ("this model does not support embeddings", as Ollama's own engine
answers for a model without pooling).
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
"mostInFlight": at most at once, "embeddings": received, "firstRequest": {client: time},
"firstAnswered": {client: time}}`, since start (the checks' smoke request is not streamed; a
benchmark's requests are). A client is its User-Agent's product (`turnout` for the operator's
checks, `kube-probe` for the kubelet's probes); its times, in seconds since the epoch, are those of
its first request and of its first complete 2xx answer: a test tells from them whether turnout
checked a pod before the kubelet had found it ready.

vLLM's `/metrics` counts what the simulator really served, as vLLM would (`vllm_metrics`): every
request by route and status group, and for each chat completion its end-to-end latency, its time
to first token and how it finished (`error` for a 500 of the error ratio).

Binding (`slow-start`, `refuse`) is not the app's business: see `simulator`.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import itertools
import json
import random
import re
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


_OLLAMA_HOST, _OLLAMA_NAMESPACE, _OLLAMA_TAG = "registry.ollama.ai", "library", "latest"


def _ollama_parts(name: str) -> tuple[str, str, str, str]:
    """Ollama's reading of a name (types/model/name.go: ParseName): host, namespace, model, tag,
    the defaults filled in, a URL scheme dropped; a part promised by a separator but empty is ""."""
    rest, tag = name, _OLLAMA_TAG
    if name.rfind(":") > name.rfind("/"):  # "/" is no tag character: a ":" before it is a host's port
        rest, _, tag = name.rpartition(":")
    if "/" not in rest:
        return _OLLAMA_HOST, _OLLAMA_NAMESPACE, rest, tag
    rest, _, model = rest.rpartition("/")
    if "/" not in rest:
        return _OLLAMA_HOST, rest, model, tag
    host, _, namespace = rest.rpartition("/")
    return host.partition("://")[2] if "://" in host else host, namespace, model, tag


def ollama_tag(name: str) -> str:
    """Ollama's spelling of a model name, as `/api/tags` lists it (types/model/name.go: DisplayShortest):
    without the default host and namespace, always with a tag: `llama3` and `library/llama3` are
    `llama3:latest`, `llama3:8b` stays."""
    host, namespace, model, tag = _ollama_parts(name)
    if host.casefold() != _OLLAMA_HOST:
        return f"{host}/{namespace}/{model}:{tag}"
    if namespace.casefold() != _OLLAMA_NAMESPACE:
        return f"{namespace}/{model}:{tag}"
    return f"{model}:{tag}"


def ollama_owner(name: str) -> str:
    """`owned_by` in Ollama's `/v1/models`: the name's namespace (openai/openai.go: ToListCompletion)."""
    return _ollama_parts(name)[1]


def ollama_name_is_valid(name: str) -> bool:
    """Whether Ollama takes `name` (types/model/name.go: IsValid, isValidPart): every part present, a
    letter, digit or "_" first, then those, "-" or "." (no "." in a namespace, ":" only in a host);
    at most 350 characters for a host, 80 for the others."""
    host, namespace, model, tag = _ollama_parts(name)
    first, more = "[A-Za-z0-9_]", "[A-Za-z0-9_-]"
    return all(
        re.fullmatch(pattern, part) is not None
        for pattern, part in (
            (f"{first}[A-Za-z0-9_.:-]{{0,349}}", host),
            (f"{first}{more}{{0,79}}", namespace),
            (f"{first}[A-Za-z0-9_.-]{{0,79}}", model),
            (f"{first}[A-Za-z0-9_.-]{{0,79}}", tag),
        )
    )


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
        # By client (the User-Agent's product: `turnout`, `kube-probe`, ...): when its first request
        # came, and when its first 2xx answer was complete (a stream's at its end), in seconds since the epoch.
        self.first_request: dict[str, float] = {}
        self.first_answered: dict[str, float] = {}
        self.idle = asyncio.Event()  # set while no chat completion is in flight
        self.idle.set()
        self._random = random.Random()
        models = config.models
        # Ollama keeps one manifest a name: a model served under its own name is listed once.
        ollama = list(dict.fromkeys(ollama_tag(m) for m in models))
        self.models: list[str] = ollama if config.engine == "ollama" else list(models)
        self.created = int(time.time())
        # Ollama's models' manifest times (its `modified_at`), a second apart in the order they were
        # made at start (the start script pulls, then copies), the last one now.
        self.modified = {name: time.time() - (len(self.models) - 1 - i) for i, name in enumerate(self.models)}
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
            "firstRequest": dict(self.first_request),
            "firstAnswered": dict(self.first_answered),
        }

    def failing(self) -> bool:
        """True once a `fail-after:N` simulator's N seconds have passed."""
        b = self.behaviour
        return b.mode is Mode.FAIL_AFTER and time.monotonic() - self.since >= b.seconds

    def visible_models(self) -> list[str]:
        """The names the engine lists right now, as the behaviour bends them; Ollama's most recently
        modified first (server/routes.go: ListHandler)."""
        mode = self.behaviour.mode
        if mode is Mode.NEVER_SERVES_MODEL:
            return []
        if mode is Mode.WRONG_MODEL:
            return [ollama_tag(WRONG_MODEL_NAME) if self.config.engine == "ollama" else WRONG_MODEL_NAME]
        if self.config.engine == "ollama":
            return sorted(self.models, key=lambda name: -self.modified_at(name))
        return list(self.models)

    def modified_at(self, name: str) -> float:
        """When Ollama's model `name` was last written (pulled or copied to), in seconds since the epoch."""
        return self.modified.get(name, self.created)

    def written(self, name: str) -> None:
        """Ollama wrote model `name`'s manifest now (a pull or a copy): it is listed, and first."""
        if name not in self.models:
            self.models.append(name)
        self.modified[name] = max([time.time(), *self.modified.values()]) + 1e-6  # strictly the newest

    def resolve(self, requested: str, any_case: bool = False) -> str | None:
        """The listed model a request's name refers to, or None. Ollama reads the name as its own
        (`chat` is `chat:latest`), and, with `any_case`, regardless of case, as it does where it looks
        the name up among its manifests (server/routes.go: getExistingName) rather than as a file."""
        name = ollama_tag(requested) if self.config.engine == "ollama" else requested
        listed = self.visible_models()
        if any_case:
            return next((known for known in listed if known.casefold() == name.casefold()), None)
        return name if name in listed else None


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
        caller = request.headers.get("User-Agent", "").split("/", 1)[0] or "-"
        state.first_request.setdefault(caller, time.time())
        response = await _counted(state, request, handler)
        if 200 <= response.status < 300:
            state.first_answered.setdefault(caller, time.time())
        return response

    return count


async def _counted(state: EngineState, request: web.Request, handler: _Handler) -> web.StreamResponse:
    """The handler's answer, the chat completions and embedding requests counted."""
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
    """Ollama 0.12.6's server: /, /api/version, /api/tags, /api/pull, /api/copy, /api/show, /api/embed, /v1/models,
    /v1/chat/completions, /v1/embeddings, as its source answers them (see the README's table)."""

    @web.middleware
    async def guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if state.failing():
            return _gin_json({"error": "service unavailable"}, status=503)
        try:
            return await handler(request)
        except web.HTTPNotFound:
            # gin's own answers (gin.go: serveError), Ollama's router being gin with HandleMethodNotAllowed.
            return web.Response(body=b"404 page not found", status=404, content_type="text/plain")
        except web.HTTPMethodNotAllowed:
            return web.Response(body=b"405 method not allowed", status=405, content_type="text/plain")

    async def root(_: web.Request) -> web.StreamResponse:
        return web.Response(text="Ollama is running")

    async def version(_: web.Request) -> web.StreamResponse:
        return _gin_json({"version": OLLAMA_VERSION})

    async def tags(_: web.Request) -> web.StreamResponse:
        entries = [_ollama_tag_entry(name, state.modified_at(name)) for name in state.visible_models()]
        return _gin_json({"models": entries})

    async def pull(request: web.Request) -> web.StreamResponse:
        body = await _ollama_request(request, _PULL_REQUEST)
        if isinstance(body, web.Response):
            return body
        requested = body.get("model") or body.get("name")
        if not isinstance(requested, str) or not ollama_name_is_valid(requested):
            return _gin_json({"error": "invalid model name"}, status=400)
        name = ollama_tag(requested)
        failed = state.behaviour.mode is Mode.NEVER_SERVES_MODEL
        digest = _digest(name)
        size = _size(name)
        progress: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        if failed:
            # The registry's 404 is os.ErrNotExist (server/images.go: makeRequestWithRetry, PullModel).
            progress.append({"error": "pull model manifest: file does not exist"})
        else:
            progress += [
                # `completed` is omitted while 0 (api/types.go: ProgressResponse, omitempty).
                {"status": f"pulling {digest[7:19]}", "digest": digest, "total": size},
                {"status": f"pulling {digest[7:19]}", "digest": digest, "total": size, "completed": size},
                {"status": "verifying sha256 digest"},
                {"status": "writing manifest"},
                {"status": "success"},
            ]
            state.written(name)
        if body.get("stream", True) is False:
            # server/routes.go: waitForStream sets `application/json` itself, without a charset.
            return _go_json(progress[-1], status=500 if failed else 200, newline=False)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for line in progress:
            await response.write(_compact(line) + b"\n")
        await response.write_eof()
        return response

    async def copy(request: web.Request) -> web.StreamResponse:
        body = await _ollama_request(request, _COPY_REQUEST)
        if isinstance(body, web.Response):
            return body
        source, destination = str(body.get("source") or ""), str(body.get("destination") or "")
        if not ollama_name_is_valid(source):
            return _gin_json({"error": f"source {_go_quote(source)} is invalid"}, status=400)
        if not ollama_name_is_valid(destination):
            return _gin_json({"error": f"destination {_go_quote(destination)} is invalid"}, status=400)
        found = state.resolve(source, any_case=True)
        if found is None:
            return _gin_json({"error": f"model {_go_quote(source)} not found"}, status=404)
        state.written(ollama_tag(destination))
        return web.Response(status=200)  # nothing written: no body, no content type

    async def show(request: web.Request) -> web.StreamResponse:
        """server/routes.go: ShowHandler. The model's details as /api/tags has them, and its capabilities:
        `embedding` for an embedding model, else `completion` (server/images.go: Capabilities)."""
        body = await _ollama_request(request, _SHOW_REQUEST)
        if isinstance(body, web.Response):
            return body
        requested = str(body.get("model") or body.get("name") or "")
        if not requested:
            return _gin_json({"error": "model is required"}, status=400)
        found = state.resolve(requested, any_case=True) if ollama_name_is_valid(requested) else None
        if found is None:
            return _gin_json({"error": f"model '{requested}' not found"}, status=404)
        entry = _ollama_tag_entry(found, state.modified_at(found))
        embedding = state.config.embedding_dimension is not None
        return _gin_json({
            "modelfile": f"# Modelfile generated by \"ollama show\"\nFROM {found}\n",
            "template": "{{ .Prompt }}",
            "details": entry["details"],
            "model_info": {"general.architecture": entry["details"]["family"]},
            "capabilities": ["embedding"] if embedding else ["completion"],
            "modified_at": entry["modified_at"],
        })  # fmt: skip

    async def models(_: web.Request) -> web.StreamResponse:
        data = [
            {"id": n, "object": "model", "created": int(state.modified_at(n)), "owned_by": ollama_owner(n)}
            for n in state.visible_models()
        ]
        # Go's nil slice: no model is `"data": null` (openai/openai.go: ToListCompletion).
        return _go_json({"object": "list", "data": data or None})

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await _openai_request(request, _CHAT_REQUEST)
        if isinstance(body, web.Response):
            return body
        if not body.get("messages"):
            return _openai_error("[] is too short - 'messages'", 400, kind="invalid_request_error")
        requested = body.get("model")
        requested = requested if isinstance(requested, str) else ""
        if not ollama_name_is_valid(requested):
            return _openai_error("model is required", 400)
        if state.resolve(requested) is None:
            # GetModel reads the manifest file by the name as given: case counts (server/images.go).
            return _openai_error(f"model '{requested}' not found", 404)
        started = time.monotonic()
        if await state.degrade():
            return _openai_error(_FAILED, 500)
        return await _chat_completion(request, state, body, requested, fingerprint="fp_ollama", started=started)

    async def embed(request: web.Request) -> web.StreamResponse:
        """Ollama's own: `{"model", "input"}` in, `{"model", "embeddings": [[...]], ...}` out."""
        body = await _ollama_request(request, _EMBED_API_REQUEST)
        if isinstance(body, web.Response):
            return body
        answer = await _ollama_embed(state, body)
        if isinstance(answer, tuple):
            return _gin_json({"error": answer[0]}, status=answer[1])
        return _gin_json(answer)

    async def openai_embeddings(request: web.Request) -> web.StreamResponse:
        """Ollama's OpenAI-compatible embeddings: /api/embed's answer in OpenAI's shape, the model named
        as the client named it (middleware/openai.go: EmbeddingsMiddleware, EmbedWriter)."""
        body = await _openai_request(request, _EMBED_REQUEST)
        if isinstance(body, web.Response):
            return body
        texts = body.get("input")
        if texts == "":
            texts = [""]
        if texts is None or texts == []:
            return _openai_error("invalid input", 400, kind="invalid_request_error")
        answer = await _ollama_embed(state, {**body, "input": texts})
        if isinstance(answer, tuple):
            return _openai_error(*answer)
        tokens = answer.get("prompt_eval_count", 0)
        return _go_json(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "embedding": vector, "index": i}
                    for i, vector in enumerate(answer["embeddings"])
                ]
                or None,
                "model": body.get("model") or "",
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", root)
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/api/pull", pull)
    app.router.add_post("/api/copy", copy)
    app.router.add_post("/api/show", show)
    app.router.add_post("/api/embed", embed)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", openai_embeddings)
    return app


async def _ollama_embed(state: EngineState, body: dict[str, Any]) -> dict[str, Any] | tuple[str, int]:
    """Ollama's /api/embed (server/routes.go: EmbedHandler): its answer, or its error and status."""
    found = body.get("input")
    if isinstance(found, str):
        texts = [found] if found else []
    elif isinstance(found, list) and all(isinstance(text, str) for text in found):
        texts = list(found)
    elif found is None:
        texts = []
    else:
        return "invalid input type", 400
    requested = body.get("model")
    requested = requested if isinstance(requested, str) else ""
    # Looked up among the manifests regardless of case (getExistingName); an unknown one is
    # os.ErrNotExist from scheduleRunner, which handleScheduleError words with %q.
    if state.resolve(requested, any_case=True) is None:
        return f"model {_go_quote(requested)} not found, try pulling it first", 404
    started = time.monotonic()
    loaded = max(int((time.monotonic() - started) * 1e9), 1)
    if not texts:
        return {"model": requested, "embeddings": []}
    dimension = state.config.embedding_dimension
    if dimension is None:
        # Ollama's engine refuses a model without pooling (runner/ollamarunner/runner.go: embeddings,
        # 501), which EmbedHandler answers 500; a model on the llama.cpp runner would answer a vector.
        return "this model does not support embeddings", 500
    if await state.degrade():
        return _FAILED, 500
    answer: dict[str, Any] = {
        "model": requested,
        "embeddings": [embedding_vector(text, dimension) for text in texts],
        "total_duration": max(int((time.monotonic() - started) * 1e9), loaded + 1),
        "load_duration": loaded,
    }
    tokens = sum(len(text.split()) for text in texts)
    if tokens:  # omitempty (api/types.go: EmbedResponse)
        answer["prompt_eval_count"] = tokens
    return answer


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
    if state.config.engine == "vllm":
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
    else:  # Ollama reads `max_tokens` only (openai/openai.go: ChatCompletionRequest)
        limit = body.get("max_tokens")
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
    # Ollama's id is `chatcmpl-` and a number below 999 (middleware/openai.go: ChatMiddleware).
    serial = uuid.uuid4().hex if vllm else str(random.randrange(999))
    head: dict[str, Any] = {"id": f"chatcmpl-{serial}", "created": int(time.time()), "model": model}
    if fingerprint and not vllm:
        head["system_fingerprint"] = fingerprint  # on every chunk; vLLM's goes on its last one only
    paced = _Pace(state.waits(len(words)))
    if not body.get("stream"):
        await paced.token(0)
        state.metrics.first_token(time.monotonic() - started)
        for index in range(1, len(words)):
            await paced.token(index)
        message: dict[str, Any] = {"role": "assistant", "content": " ".join(words)}
        state.metrics.finished(time.monotonic() - started, finish, prompt_tokens, len(words))
        if not vllm:
            # openai/openai.go: ToChatCompletion; a choice has no `logprobs` there.
            plain = {"index": 0, "message": message, "finish_reason": finish}
            return _go_json(_in_go_order({**head, "object": "chat.completion", "choices": [plain], "usage": usage}))
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        answer = {**head, "object": "chat.completion", "choices": [choice]}
        # vLLM's response model serialises every optional field, null when unused.
        message |= dict.fromkeys(("refusal", "annotations", "audio", "function_call", "reasoning"))
        choice |= {"stop_reason": None, "token_ids": None, "routed_experts": None}
        usage |= {"prompt_tokens_details": None, "completion_tokens_details": None}
        answer |= {"service_tier": None, "system_fingerprint": fingerprint, "usage": usage}
        answer |= dict.fromkeys(("prompt_logprobs", "prompt_token_ids", "prompt_text", "kv_transfer_params"))
        answer |= dict.fromkeys(("ec_transfer_params", "metrics"))
        return _vllm_json(answer)

    # Ollama's ChatWriter sets only the content type (middleware/openai.go: writeResponse).
    headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    response = web.StreamResponse(headers=headers if vllm else {"Content-Type": "text/event-stream"})
    await response.prepare(request)

    async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
        chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
        if vllm:
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            return
        chunk["created"] = int(time.time())  # Ollama's ToChunk stamps each chunk now
        await response.write(b"data: " + _compact(_in_go_order(chunk)) + b"\n\n")

    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    for index, word in enumerate(words):
        await paced.token(index)
        text = word if index == 0 else f" {word}"
        if not vllm:
            # Ollama: one chunk a token, each delta with the role (openai/openai.go: ToChunk); none before.
            delta = {"role": "assistant", "content": text}
            await send([{"index": 0, "delta": delta, "finish_reason": None}])
            if index == 0:
                state.metrics.first_token(time.monotonic() - started)
            continue
        if index == 0:
            first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            await send([{**first, "logprobs": None}], prompt_token_ids=None, prompt_text=None)
            state.metrics.first_token(time.monotonic() - started)
        delta = {"content": text}
        # vLLM ends with the last token's chunk; the fingerprint goes on the final chunk (usage's, if asked).
        last = index == len(words) - 1
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish if last else None}
        choice |= {"stop_reason": None, "token_ids": None} if last else {"token_ids": None}
        stamp = {"system_fingerprint": fingerprint} if last and not include_usage else {}
        await send([choice], **stamp)
    if not vllm:
        # The runner's last answer, done and empty (runner/ollamarunner/runner.go: completion).
        await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": finish}])
    if include_usage:
        await send([], usage=usage, **({"system_fingerprint": fingerprint} if vllm else {}))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    state.metrics.finished(time.monotonic() - started, finish, prompt_tokens, len(words))
    return response


# The fields of Ollama's ChatCompletion and ChatCompletionChunk, in the order Go writes them (openai/openai.go).
_CHAT_FIELDS = ("id", "object", "created", "model", "system_fingerprint", "choices", "usage")


def _in_go_order(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: answer[key] for key in _CHAT_FIELDS if key in answer}


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


def _compact(data: Any) -> bytes:
    """JSON as Go's encoding/json writes it: no spaces."""
    return json.dumps(data, separators=(",", ":")).encode()


def _gin_json(data: Any, status: int = 200) -> web.Response:
    """JSON as gin's `c.JSON` sends it: compact, `application/json; charset=utf-8` (render/json.go)."""
    return web.Response(body=_compact(data), status=status, content_type="application/json", charset="utf-8")


def _go_json(data: Any, status: int = 200, newline: bool = True) -> web.Response:
    """JSON as Ollama's OpenAI writers send it (middleware/openai.go): `application/json` without a
    charset, from Go's `json.Encoder`, which ends it with a newline."""
    body = _compact(data) + (b"\n" if newline else b"")
    return web.Response(body=body, status=status, content_type="application/json")


def _go_quote(text: str) -> str:
    """Go's `%q` of a string, as Ollama quotes names in its messages (JSON's escapes are Go's, for text)."""
    return json.dumps(text, ensure_ascii=False)


def _openai_error(message: str, status: int, kind: str = "api_error") -> web.Response:
    """Ollama's OpenAI error (openai/openai.go: NewError). Its middleware's own refusals carry their
    status's type (400 `invalid_request_error`); a handler's error is rewritten by `writeError`
    (middleware/openai.go) with NewError(500, ...), so it is `api_error` whatever its status."""
    error = {"message": message, "type": kind, "param": None, "code": None}
    return _go_json({"error": error}, status)


# The Go types Ollama's OpenAI middleware binds a request to, for its decoder's messages:
# (struct name, {JSON field: Go type}); middleware/openai.go: ChatMiddleware, EmbeddingsMiddleware.
_CHAT_REQUEST = ("openai.ChatCompletionRequest", {"model": "string", "messages": "[]openai.Message", "stream": "bool"})
_EMBED_REQUEST = ("openai.EmbedRequest", {"model": "string", "dimensions": "int"})
# And those its own API binds to (api/types.go: PullRequest, CopyRequest, EmbedRequest).
_PULL_REQUEST = ("api.PullRequest", {"model": "string", "name": "string", "stream": "bool"})
_COPY_REQUEST = ("api.CopyRequest", {"source": "string", "destination": "string"})
_SHOW_REQUEST = ("api.ShowRequest", {"model": "string", "name": "string", "system": "string", "verbose": "bool"})
_EMBED_API_REQUEST = ("api.EmbedRequest", {"model": "string", "dimensions": "int"})
_GO_KINDS = {str: "string", bool: "bool", int: "number", float: "number", dict: "object", list: "array"}


def _go_decode_error(raw: str, struct: str, fields: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """A request body as gin's `ShouldBindJSON` reads it into a Go struct: the object, or the error
    text Go's `encoding/json` gives (the wording of a syntax error other than a wrong first character
    is assumed)."""
    if not raw.strip():
        return None, "EOF"
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as error:
        first = raw.lstrip()[:1]
        if error.pos == len(raw) - len(raw.lstrip()):
            return None, f"invalid character {first!r} looking for beginning of value"
        return None, f"invalid JSON: {error.msg}"
    short = struct.rpartition(".")[2]
    if not isinstance(body, dict):
        return None, f"json: cannot unmarshal {_GO_KINDS.get(type(body), 'value')} into Go value of type {struct}"
    for key, go_type in fields.items():
        value = body.get(key)
        if value is None:
            continue
        fits = {"string": str, "bool": bool, "int": int}.get(go_type, list)
        if not isinstance(value, fits) or (fits is int and isinstance(value, bool)):
            kind = _GO_KINDS.get(type(value), "value")
            return None, f"json: cannot unmarshal {kind} into Go struct field {short}.{key} of type {go_type}"
    return body, None


async def _openai_request(request: web.Request, bound: tuple[str, dict[str, str]]) -> dict[str, Any] | web.Response:
    """The body of an OpenAI request to Ollama, or its middleware's 400 (`invalid_request_error`)."""
    body, error = _go_decode_error(await request.text(), *bound)
    if body is None:
        return _openai_error(error or "", 400, kind="invalid_request_error")
    return body


async def _ollama_request(request: web.Request, bound: tuple[str, dict[str, str]]) -> dict[str, Any] | web.Response:
    """The body of a request to Ollama's own API, or its 400: "missing request body" for none, else
    the decoder's error (server/routes.go: PullHandler, CopyHandler, EmbedHandler)."""
    body, error = _go_decode_error(await request.text(), *bound)
    if body is None:
        return _gin_json({"error": "missing request body" if error == "EOF" else error}, status=400)
    return body


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _size(name: str) -> int:
    # Deterministic and plausible: 1-5 GB, like a quantised 8B model.
    return 1_000_000_000 + int(_digest(name)[7:15], 16) % 4_000_000_000


def _ollama_tag_entry(name: str, modified: float) -> dict[str, Any]:
    """One model of `/api/tags` (api/types.go: ListModelResponse): the keys are Ollama's; the size,
    digest and details are made up, the same for the same name."""
    family = name.rsplit("/", 1)[-1].split(":")[0]
    # Go's time.Time in JSON: RFC 3339 with fractions, in the server's zone (UTC in the image).
    stamp = datetime.datetime.fromtimestamp(modified, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "name": name,
        "model": name,
        "modified_at": stamp,
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
