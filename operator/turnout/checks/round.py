"""One round of engine-aware checks: does each pod of a color serve the model, as its engine shows it?

What to ask a pod is the engine's (`EngineProfile.check`, over a `PodProbe`); then what the model's
task serves: for a chat model, with `smoke_request`, one OpenAI chat completion of `max_tokens: 1`,
which every engine serves; for an embedding model, always, one embedding on the engine's own endpoint
(`EngineProfile.embed`), whose vector's length (dimension) the round reports.
Every failure becomes a `CheckResult` with a message a user can act on; nothing raises. The API
key is sent, never written into a message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from turnout import metrics
from turnout.api.spec import Engine, Task
from turnout.engines import profile_of
from turnout.engines.probe import CheckFailed, PodProbe, pod_client
from turnout.engines.profile import EngineProfile


@dataclass(frozen=True)
class CheckTarget:
    """One pod to check: its name (for messages), IP and the engine's port."""

    pod: str
    ip: str
    port: int


@dataclass(frozen=True)
class CheckResult:
    """One pod, one round. `message` is "" when ok; `latency_seconds` spans all of the pod's requests."""

    pod: str
    ok: bool
    message: str
    latency_seconds: float
    embedding_dimension: int | None = None
    """The length of the vector the pod answered, for an embedding model."""


@dataclass(frozen=True)
class CheckRound:
    """All pods of a color, one round: passed iff there was a pod and every pod passed (and, for an
    embedding model, all answered vectors of one length)."""

    passed: bool
    message: str
    results: tuple[CheckResult, ...]
    embedding_dimension: int | None = None
    """The length of the vectors every pod answered, for an embedding model that passed."""


def target_probe(
    client: httpx.AsyncClient,
    profile: EngineProfile,
    target: CheckTarget,
    *,
    api_key: str | None,
    timeout_seconds: float,
) -> PodProbe:
    """Requests to `target` over `client`, each bounded by `timeout_seconds`, `api_key` sent to `/v1/*` when set."""
    return PodProbe(
        client,
        target.ip,
        target.port,
        api_key=api_key,
        api_key_field=profile.api_key_field,
        timeout_seconds=timeout_seconds,
    )


async def check_round(
    engine: Engine,
    served_name: str,
    targets: Sequence[CheckTarget],
    *,
    api_key: str | None,
    timeout_seconds: float,
    smoke_request: bool,
    task: Task = Task.CHAT,
    client: httpx.AsyncClient | None = None,
) -> CheckRound:
    """Check every target concurrently and record each pod's latency in `turnout_check_latency_seconds`.

    `timeout_seconds` bounds each HTTP request as a whole (connect to last byte). `api_key` goes as
    a Bearer token to the `/v1/*` endpoints when set. `task` is the model's: an embedding model is
    asked for one embedding whatever `smoke_request` says. A `client` given is used and left open;
    otherwise one is made for the round and closed.
    """
    if not targets:
        return CheckRound(passed=False, message="no Ready pods to check", results=())
    if client is None:
        async with pod_client() as own:
            return await check_round(
                engine,
                served_name,
                targets,
                api_key=api_key,
                timeout_seconds=timeout_seconds,
                smoke_request=smoke_request,
                task=task,
                client=own,
            )
    profile = profile_of(engine)
    results = await asyncio.gather(
        *(
            _check_pod(
                client,
                profile,
                served_name,
                t,
                api_key=api_key,
                timeout_seconds=timeout_seconds,
                smoke_request=smoke_request,
                task=task,
            )
            for t in targets
        )
    )
    for result in results:
        metrics.CHECK_LATENCY.labels(engine=str(engine)).observe(result.latency_seconds)
    for target, result in zip(targets, results, strict=True):
        if not result.ok:
            return CheckRound(
                passed=False, message=f"pod {target.pod} ({target.ip}): {result.message}", results=tuple(results)
            )
    dimensions = {result.embedding_dimension for result in results}
    if len(dimensions) > 1:
        lengths = ", ".join(f"pod {r.pod} {r.embedding_dimension}" for r in results)
        message = f"the pods answer vectors of different lengths ({lengths}): they do not serve the same model"
        return CheckRound(passed=False, message=message, results=tuple(results))
    return CheckRound(passed=True, message="", results=tuple(results), embedding_dimension=dimensions.pop())


async def _check_pod(
    client: httpx.AsyncClient,
    profile: EngineProfile,
    served_name: str,
    target: CheckTarget,
    *,
    api_key: str | None,
    timeout_seconds: float,
    smoke_request: bool,
    task: Task,
) -> CheckResult:
    probe = target_probe(client, profile, target, api_key=api_key, timeout_seconds=timeout_seconds)
    started = time.monotonic()
    dimension = None
    try:
        await profile.check(probe, served_name)
        if task is Task.EMBEDDING:
            dimension = await profile.embed(probe, served_name)
        elif smoke_request:
            await _check_completion(probe, served_name)
    except CheckFailed as failed:
        return CheckResult(
            target.pod, ok=False, message=probe.redact(str(failed)), latency_seconds=time.monotonic() - started
        )
    return CheckResult(
        target.pod, ok=True, message="", latency_seconds=time.monotonic() - started, embedding_dimension=dimension
    )


async def _check_completion(probe: PodProbe, served_name: str) -> None:
    path = "/v1/chat/completions"
    request = {"model": served_name, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    choices = (await probe.json_object("POST", path, request)).get("choices")
    if not isinstance(choices, list) or not choices:
        raise CheckFailed(f'{path} answered 200 without "choices"')
