"""When the operator looks at a backend again: retries after a failure back off, idle resyncs spread out."""

from __future__ import annotations

from turnout.handlers import ERROR_RETRY_CAP_SECONDS, ERROR_RETRY_SECONDS, RESYNC_SPREAD, resync_delay, retry_delay
from turnout.rollout.plan import IDLE_RESYNC_SECONDS


def test_retries_back_off_doubling_up_to_the_cap() -> None:
    ceilings = [retry_delay(failures, jitter=0.999999) for failures in range(1, 10)]
    assert ceilings[:3] == [ERROR_RETRY_SECONDS * 2**n * (0.5 + 0.999999 / 2) for n in range(3)]
    assert max(ceilings) <= ERROR_RETRY_CAP_SECONDS
    assert retry_delay(1000, jitter=0.999999) <= ERROR_RETRY_CAP_SECONDS


def test_backends_that_failed_together_do_not_retry_in_step() -> None:
    spread = {retry_delay(3, jitter=j / 10) for j in range(10)}
    assert len(spread) == 10
    assert min(spread) == ERROR_RETRY_SECONDS * 4 * 0.5


def test_idle_backends_do_not_resync_in_step() -> None:
    spread = [resync_delay(IDLE_RESYNC_SECONDS, jitter=j / 10) for j in range(10)]
    assert len(set(spread)) == 10
    assert min(spread) == IDLE_RESYNC_SECONDS * (1 - RESYNC_SPREAD)
    assert max(spread) < IDLE_RESYNC_SECONDS * (1 + RESYNC_SPREAD)


def test_a_step_that_asks_to_be_seen_soon_is_not_delayed() -> None:
    assert resync_delay(5.0, jitter=0.9) == 5.0
