"""The API key through the real reconcile and the real checks, over HTTP to an engine on 127.0.0.1:
whatever goes wrong with it, its value appears nowhere a person or a program can read, and a busy
API server never rolls back a healthy revision."""

from __future__ import annotations

import json
import logging

import pytest
from aiohttp import web
from kubernetes.client.exceptions import ApiException
from prometheus_client import REGISTRY, generate_latest

from testground.behaviour import Behaviour
from testground.engines import EngineConfig, EngineState, build_app
from tests.unit.fakes.engine import cut_over_checked_for_real, real_checks
from tests.unit.fakes.operator import NAME, NAMESPACE, InProcessOperator
from tests.unit.rollout.world import spec
from turnout.api.status import Color

CANARY = "canary-3f9c1d7e-never-print-me"
KEY_REF = {"apiKeySecretRef": {"name": "vllm-key", "key": "token"}}


def vllm(api_key: str | None) -> web.Application:
    """The test ground's vLLM simulator serving "chat", guarding /v1/* with `api_key`."""
    return build_app(EngineState(EngineConfig("vllm", ("chat",), api_key=api_key), Behaviour.parse("healthy")))


def vllm_echoing_the_key() -> web.Application:
    """vLLM that serves "chat" but answers a completion with an error quoting the Authorization header."""

    async def health(_: web.Request) -> web.StreamResponse:
        return web.Response()

    async def models(_: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [{"id": "chat", "object": "model"}]})

    async def echo(request: web.Request) -> web.StreamResponse:
        error = {"message": f"cannot serve {request.headers.get('Authorization')}", "type": "InternalServerError"}
        return web.json_response({"error": error}, status=500)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", echo)
    return app


def cut_over_to_the_key(operator: InProcessOperator, app: web.Application) -> None:
    """Blue serves without a key; the spec then names the key, and green is checked for real until it fails."""
    cut_over_checked_for_real(operator, app, spec(), spec(vllm=KEY_REF))


def everything_readable(operator: InProcessOperator, caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    """What people and programs can read, by where: status, Events, logs, metrics, turnout's writes and objects."""
    objects = {key: obj for key, obj in operator.cluster.objects.items() if key[0] != "Secret"}
    return {
        "status": json.dumps(operator.cluster.backend(NAMESPACE, NAME).get("status"), ensure_ascii=False),
        "events": "\n".join(f"{e.type} {e.reason} {e.message}" for e in operator.events),
        "logs": caplog.text + "\n".join(repr(r.__dict__) for r in caplog.records),
        "metrics": generate_latest(REGISTRY).decode(),
        "writes": json.dumps([w.body for w in operator.cluster.writes], ensure_ascii=False, default=str),
        "objects": json.dumps([[list(k), v] for k, v in objects.items()], ensure_ascii=False, default=str),
    }


@pytest.mark.parametrize(
    ("secret", "app", "said"),
    [
        (
            {"token": f"{CANARY}\n"},
            vllm(CANARY),
            "key token (spec.vllm.apiKeySecretRef), starts or ends with whitespace",
        ),
        ({"token": f"{CANARY}é"}, vllm(CANARY), "key token (spec.vllm.apiKeySecretRef), contains non-ASCII characters"),
        (
            {"token": CANARY.encode() + b"\xff"},
            vllm(CANARY),
            "key token (spec.vllm.apiKeySecretRef), is not valid UTF-8",
        ),
        ({"token": CANARY}, vllm("sk-the-engines-own-key"), "/v1/models answered 401: the API key was refused"),
        ({"token": CANARY}, vllm_echoing_the_key(), "/v1/chat/completions answered 500: cannot serve Bearer ***"),
        ({"other": CANARY}, vllm(CANARY), "Secret vllm-key has no key token (spec.vllm.apiKeySecretRef)"),
        (None, vllm(CANARY), "Secret vllm-key (spec.vllm.apiKeySecretRef) does not exist in namespace ml"),
        ("forbidden", vllm(CANARY), "forbidden: grant get on secrets in ml to turnout's ServiceAccount"),
    ],
    ids=["newline", "non-ascii", "non-utf8", "wrong-key", "echoed", "missing-key", "missing-secret", "forbidden"],
)
def test_the_api_key_appears_nowhere_whatever_fails(
    operator: InProcessOperator,
    caplog: pytest.LogCaptureFixture,
    secret: dict[str, str | bytes] | str | None,
    app: web.Application,
    said: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    if secret == "forbidden":
        operator.cluster.put_secret(NAMESPACE, "vllm-key", {"token": CANARY})
        operator.cluster.secret_read_errors = [ApiException(status=403, reason="Forbidden")] * 10
    elif isinstance(secret, dict):
        operator.cluster.put_secret(NAMESPACE, "vllm-key", secret)
    cut_over_to_the_key(operator, app)
    status = operator.status()
    assert status.last_failure_reason == "CheckFailed"
    assert said in (status.last_failure_message or "")
    assert operator.service_color() == "blue"
    readable = everything_readable(operator, caplog)
    assert said in readable["events"]
    leaks = [where for where, text in readable.items() if CANARY in text or CANARY[:12] in text]
    assert leaks == []


def test_a_busy_api_server_through_the_bake_rolls_nothing_back(
    operator: InProcessOperator, caplog: pytest.LogCaptureFixture
) -> None:
    operator.cluster.put_secret(NAMESPACE, "vllm-key", {"token": CANARY})
    with real_checks(operator, vllm(CANARY)):
        operator.start_healthy(spec(vllm=KEY_REF))
        operator.edit(spec(vllm={**KEY_REF, "dtype": "half"}))
        operator.reconcile()
        operator.pods_ready(Color.GREEN)
        while operator.status().phase != "Baking":
            assert len(operator.events) < 20, operator.status()
            operator.advance(5)
            operator.reconcile()
        # Every Secret read of the bake (120 s, a reconcile each 5 s) meets an overloaded API server: the
        # key's digest (part of the revision) cannot be read, so each reconcile stops and is retried.
        operator.cluster.secret_read_errors = [ApiException(status=503, reason="Service Unavailable")] * 24
        for _ in range(24):
            operator.advance(5)
            with pytest.raises(ApiException):
                operator.reconcile()
            status = operator.status()
            assert (status.phase, status.check_failures, status.last_failed_revision) == ("Baking", 0, None)
        operator.advance(5)
        operator.reconcile()
    status = operator.status()
    assert (status.phase, status.last_failed_revision) == ("Healthy", None)
    assert operator.service_color() == "green"
    assert not [r for r in caplog.records if CANARY in r.getMessage()]


def test_a_rotated_key_starts_a_cutover_without_a_spec_change(operator: InProcessOperator) -> None:
    operator.cluster.put_secret(NAMESPACE, "vllm-key", {"token": "key-one"})
    operator.start_healthy(spec(vllm=KEY_REF))
    before = operator.status().active_revision
    operator.advance(60)
    operator.reconcile()
    assert operator.last_writes == []  # the same key: nothing to do
    operator.cluster.put_secret(NAMESPACE, "vllm-key", {"token": "key-two"})
    operator.advance(60)
    operator.reconcile()
    status = operator.status()
    assert status.preview_revision not in (None, before)
    assert ("apply", "Deployment", "chat-green") in [(w.verb, w.kind, w.name) for w in operator.last_writes]
    assert operator.service_color() == Color.BLUE.value  # only after green is proven


def test_a_transient_error_reading_the_key_changes_no_revision(operator: InProcessOperator) -> None:
    operator.cluster.put_secret(NAMESPACE, "vllm-key", {"token": "key-one"})
    operator.start_healthy(spec(vllm=KEY_REF))
    operator.cluster.secret_read_errors = [ApiException(status=429, reason="Too Many Requests")]
    operator.advance(60)
    with pytest.raises(ApiException):
        operator.reconcile()  # the key's digest is part of the revision: retried by the handler with backoff
    assert operator.status().phase == "Healthy"
    assert operator.status().preview_revision is None
