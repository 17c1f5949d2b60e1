"""One simulated engine bound to one address: when it listens is how `slow-start` and `refuse` show."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from testground.behaviour import Behaviour, Degradation, Mode
from testground.engines import EngineConfig, EngineState, build_app

log = logging.getLogger(__name__)

# In-flight requests get this long when the socket closes (stop, or a switch to refuse/slow-start).
_SHUTDOWN_SECONDS = 0.5


class Simulator:
    """An engine simulator on `host:port`.

    `healthy`, `never-serves-model`, `wrong-model`, `fail-after` listen at once; `slow-start:N`
    listens after N s; `refuse` never listens. A behaviour change applies now: switching to
    `refuse` or `slow-start` closes the socket and every open connection, like an engine restart.
    A degradation (error ratio, added latency) applies to the next chat completion.
    """

    def __init__(
        self, host: str, port: int, config: EngineConfig, behaviour: Behaviour, degradation: Degradation | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.state = EngineState(config, behaviour, degradation)
        self._runner: web.AppRunner | None = None
        self._later: asyncio.Task[None] | None = None

    @property
    def listening(self) -> bool:
        """True while the socket accepts connections."""
        return self._runner is not None

    async def start(self) -> None:
        """Listen as the behaviour says; raises OSError when the address cannot be bound."""
        await self._apply()

    async def set_behaviour(self, behaviour: Behaviour) -> None:
        """Change behaviour at once; raises OSError when a needed bind fails."""
        self.state.set_behaviour(behaviour)
        await self._apply()

    def set_degradation(self, degradation: Degradation) -> None:
        """Worsen (or mend) the chat completions from the next one on; the socket stays as it is."""
        self.state.set_degradation(degradation)

    async def stop(self) -> None:
        """Close the socket and every connection; idempotent."""
        await self._cancel_later()
        await self._close()

    async def terminate(self, pre_stop: float, drain: float, grace: float) -> None:
        """Stop as a kubelet stops the engine of a deleted pod, the seconds counted from now.

        Serves as before for `pre_stop` (the preStop sleep); then, at SIGTERM, stops listening and
        lets the requests in flight finish for up to `drain` seconds (vLLM's `--shutdown-timeout`;
        0 for an engine that cuts them at once); closes everything when they are done, and at
        `grace` (the kubelet's SIGKILL) at the latest. Returns when the simulator is closed.
        """
        loop = asyncio.get_running_loop()
        kill_at = loop.time() + grace
        await asyncio.sleep(max(0.0, min(pre_stop, grace)))
        await self._cancel_later()
        runner = self._runner
        if runner is not None:
            for site in list(runner.sites):
                await site.stop()
            log.info("simulator %s:%s got SIGTERM: %d in flight", self.host, self.port, self.state.in_flight)
        drain_until = min(loop.time() + drain, kill_at)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.state.idle.wait(), max(0.0, drain_until - loop.time()))
        if self.state.in_flight:
            log.info("simulator %s:%s cuts %d requests in flight", self.host, self.port, self.state.in_flight)
        await self.stop()

    async def _apply(self) -> None:
        await self._cancel_later()
        behaviour = self.state.behaviour
        if behaviour.mode is Mode.REFUSE:
            await self._close()
        elif behaviour.mode is Mode.SLOW_START:
            await self._close()
            self._later = asyncio.create_task(self._listen_after(behaviour.seconds))
        elif not self.listening:
            await self._listen()

    async def _listen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        try:
            await self._listen()
        except OSError:
            log.exception("simulator %s:%s could not bind after its slow start", self.host, self.port)

    async def _listen(self) -> None:
        # A fresh app per bind: an aiohttp app cannot be started again after its runner's cleanup.
        self._runner = await serve(build_app(self.state), self.host, self.port, _SHUTDOWN_SECONDS)

    async def _close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            await runner.cleanup()
        except asyncio.CancelledError:
            # Cancelled half-way (a terminating simulator stopped for good): the next stop finishes it.
            self._runner = runner
            raise

    async def _cancel_later(self) -> None:
        later, self._later = self._later, None
        if later is not None:
            later.cancel()
            # Wait for it, so a bind half-done when it was cancelled is cleaned up before we go on.
            await asyncio.gather(later, return_exceptions=True)


async def serve(app: web.Application, host: str, port: int, shutdown_timeout: float) -> web.AppRunner:
    """Start `app` on host:port and return its runner (stopped by `runner.cleanup()`); raises OSError
    when the address cannot be bound, with nothing left running."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
