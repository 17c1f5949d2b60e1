"""Read a model's files from its inspector pod over HTTP: each request bounded in time and size.

The pod serves the model's directory (`render/inspector.py`); which files say what, and how they are
parsed, is `engines/model_files.py`. A file that is not there (404) is an answer: the model is not on
the claim (yet); no connection is no answer yet: the pod's server is starting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from turnout.engines.model_files import (
    CONFIG_FILE,
    HUB_REF,
    INDEX_FILES,
    MAX_CONFIG_BYTES,
    MAX_INDEX_BYTES,
    MAX_REF_BYTES,
    SINGLE_FILE,
    ModelDirectory,
    config_facts,
    index_total_size,
    snapshot_prefix,
)
from turnout.engines.probe import pod_client
from turnout.rollout.observed import ModelFilesRead

READ_TIMEOUT_SECONDS = 10.0
"""Each request to the inspector pod, whole (connect, headers and body)."""


class _Missing(Exception):
    """The file is not there (404)."""


class _NoAnswer(Exception):
    """The pod's server does not answer (yet)."""


async def read_model_files(
    ip: str,
    port: int,
    directory: ModelDirectory,
    claim: str,
    *,
    client: httpx.AsyncClient | None = None,
    timeout_seconds: float = READ_TIMEOUT_SECONDS,
) -> ModelFilesRead:
    """The size facts of the model in `directory` (on `claim`), served by the pod at `ip:port`."""
    host = f"[{ip}]" if ":" in ip else ip
    own = client is None
    http = client or pod_client()
    source = f"{CONFIG_FILE} on claim {claim}"

    async def get(path: str, limit: int) -> bytes:
        return await _get(http, f"http://{host}:{port}/{path}", limit, timeout_seconds)

    prefix, path = "", directory.path
    try:
        if directory.hub:
            try:
                prefix = snapshot_prefix(await get(HUB_REF, MAX_REF_BYTES))
            except _Missing:
                return ModelFilesRead(
                    problem=f"the model is not downloaded on claim {claim} yet ({directory.path}/{HUB_REF} is missing)"
                )
        path = f"{directory.path}/{prefix}".rstrip("/")
        try:
            config = await get(prefix + CONFIG_FILE, MAX_CONFIG_BYTES)
        except _Missing:
            return ModelFilesRead(problem=f"no {CONFIG_FILE} in {path} on claim {claim} (not downloaded yet?)")
        checkpoint = await _checkpoint_bytes(http, f"http://{host}:{port}/{prefix}", timeout_seconds)
        if checkpoint is None:
            files = " or ".join((*INDEX_FILES, SINGLE_FILE))
            return ModelFilesRead(problem=f"no {files} beside {CONFIG_FILE} in {path} on claim {claim}")
        facts = config_facts(config, checkpoint)
    except _NoAnswer as error:
        return ModelFilesRead(problem=str(error), retry=True)
    except ValueError as error:
        return ModelFilesRead(problem=f"{path} on claim {claim}: {error}")
    finally:
        if own:
            await http.aclose()
    return ModelFilesRead(facts=facts, source=source, path=path)


async def _checkpoint_bytes(http: httpx.AsyncClient, base: str, seconds: float) -> int | None:
    """The weights' bytes: an index's `metadata.total_size`, or a single file's size; None without either."""
    for index in INDEX_FILES:
        try:
            return index_total_size(await _get(http, base + index, MAX_INDEX_BYTES, seconds))
        except _Missing:
            continue
    try:
        async with asyncio.timeout(seconds):
            response = await http.head(base + SINGLE_FILE, timeout=seconds)
    except (TimeoutError, httpx.HTTPError, OSError) as error:
        raise _NoAnswer(f"the inspector pod did not answer HEAD {SINGLE_FILE} ({type(error).__name__})") from None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise ValueError(f"HEAD {SINGLE_FILE} answered {response.status_code}")
    length = response.headers.get("Content-Length", "")
    if not length.isdigit() or int(length) < 1:
        raise ValueError(f"{SINGLE_FILE} has no size")
    return int(length)


async def _get(http: httpx.AsyncClient, url: str, limit: int, seconds: float) -> bytes:
    """The body of a 200 answer, at most `limit` bytes; `_Missing` for 404, `_NoAnswer` without an
    answer, `ValueError` for anything else (another status, a larger body)."""
    name = url.rsplit("/", 1)[-1]
    try:
        async with (
            asyncio.timeout(seconds),
            http.stream("GET", url, headers={"Accept-Encoding": "identity"}, timeout=seconds) as response,
        ):
            if response.status_code == 404:
                raise _Missing(name)
            if response.status_code != 200:
                raise ValueError(f"GET {name} answered {response.status_code}")
            body = bytearray()
            # A transport that read the body itself (httpx.MockTransport) has it whole already.
            chunks = [response.content] if response.is_stream_consumed else response.aiter_raw()
            async for chunk in _each(chunks):
                body += chunk
                if len(body) > limit:
                    raise ValueError(f"{name} is larger than {limit // 1024} KiB, more than turnout reads")
            return bytes(body)
    except (TimeoutError, httpx.HTTPError, OSError) as error:
        raise _NoAnswer(f"the inspector pod did not answer GET {name} ({type(error).__name__})") from None


async def _each(chunks: list[bytes] | AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if isinstance(chunks, list):
        for chunk in chunks:
            yield chunk
        return
    async for chunk in chunks:
        yield chunk
