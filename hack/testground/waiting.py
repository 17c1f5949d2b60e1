"""Wait on a condition with a deadline instead of sleeping for luck."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not hold before its deadline."""


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    fatal: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``probe`` until it returns something truthy and return that value.

    Exceptions from ``probe`` count as "not yet" and the last one is reported on timeout,
    except those in ``fatal``, which end the wait at once. ``timeout`` and ``interval`` are
    in seconds.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except fatal:
            raise
        except Exception as error:  # any other failure means "not ready yet"
            last_error = error
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)
