"""A static file server on one address, as `python3 -m http.server --directory DIR` serves: files by path,
looked up at each request (a directory that does not exist yet answers 404 until it does), symlinks
followed within the directory (a Hugging Face cache's snapshots link into its blobs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from testground.simulator import serve


class FileServer:
    """Serves the files under `root` on `host:port` until stopped."""

    def __init__(self, host: str, port: int, root: str) -> None:
        self.host = host
        self.port = port
        self.root = root
        self._runner: web.AppRunner | None = None

    @property
    def listening(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be bound."""
        app = web.Application()
        app.router.add_get("/{path:.*}", self._file)  # and HEAD
        self._runner = await serve(app, self.host, self.port, shutdown_timeout=0.5)

    async def stop(self) -> None:
        """Close the socket; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _file(self, request: web.Request) -> web.StreamResponse:
        found = await asyncio.to_thread(self._find, request.match_info["path"])
        if found is None:
            raise web.HTTPNotFound()
        return web.FileResponse(found)

    def _find(self, path: str) -> Path | None:
        root = Path(self.root).resolve()
        found = (root / path).resolve()
        return found if found.is_relative_to(root) and found.is_file() else None
