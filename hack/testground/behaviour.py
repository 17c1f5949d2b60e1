"""How a simulated engine misbehaves, parsed from its pod's annotations.

`sim.turnout.dev/behaviour`, one of (N in seconds, a float):

- `healthy`             serves its model.
- `slow-start:N`        the socket refuses connections for N s, then serves (weights loading).
- `never-serves-model`  answers, but its model list lacks the model (see `engines` for each engine).
- `wrong-model`         answers and serves a model under another name (`other-model`).
- `fail-after:N`        serves for N s, then answers 503 on every endpoint.
- `refuse`              never binds: every connection is refused.

And how it worsens the chat completions it serves (`Degradation`), alongside any behaviour:

- `sim.turnout.dev/error-ratio: R` (0 to 1): that share of chat completions answers HTTP 500 with
  the engine's error body, spread evenly: of the first n completions since R was set, ⌊n·R⌋ fail
  (0.2: the 5th, 10th, 15th, ...), so 100 requests see 20 errors.
- `sim.turnout.dev/latency: N`: each chat completion waits N more seconds before it answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any


class Mode(StrEnum):
    """The kinds of behaviour a simulator can show."""

    HEALTHY = "healthy"
    SLOW_START = "slow-start"
    NEVER_SERVES_MODEL = "never-serves-model"
    WRONG_MODEL = "wrong-model"
    FAIL_AFTER = "fail-after"
    REFUSE = "refuse"


_TAKES_SECONDS = {Mode.SLOW_START, Mode.FAIL_AFTER}

# The name a `wrong-model` simulator serves instead of the configured one.
WRONG_MODEL_NAME = "other-model"


class BehaviourError(ValueError):
    """A behaviour string that cannot be parsed; the message says what is accepted."""


@dataclass(frozen=True)
class Behaviour:
    """One behaviour; `seconds` is the delay of `slow-start` and `fail-after`, else 0."""

    mode: Mode = Mode.HEALTHY
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> Behaviour:
        """Parse `healthy`, `slow-start:20`, `fail-after:0.5`, ...; empty or None means healthy."""
        text = (text or "").strip()
        if not text:
            return cls()
        name, _, arg = text.partition(":")
        try:
            mode = Mode(name.strip())
        except ValueError:
            accepted = ", ".join(m.value + (":N" if m in _TAKES_SECONDS else "") for m in Mode)
            raise BehaviourError(f"unknown behaviour {text!r}; accepted: {accepted}") from None
        if mode not in _TAKES_SECONDS:
            if arg:
                raise BehaviourError(f"behaviour {mode.value!r} takes no argument, got {text!r}")
            return cls(mode)
        try:
            seconds = float(arg)
        except ValueError:
            raise BehaviourError(f"behaviour {mode.value!r} needs seconds, e.g. '{mode.value}:20'") from None
        if seconds < 0:
            raise BehaviourError(f"behaviour {text!r}: seconds must be >= 0")
        return cls(mode, seconds)

    def __str__(self) -> str:
        if self.mode in _TAKES_SECONDS:
            return f"{self.mode.value}:{self.seconds:g}"
        return self.mode.value


@dataclass(frozen=True)
class Degradation:
    """How much worse a simulator serves its chat completions: a share of 500s, and added seconds."""

    error_ratio: float = 0.0
    latency_seconds: float = 0.0

    @staticmethod
    def parse_error_ratio(text: str | None) -> float:
        """`0.2` as 0.2; empty or None is 0. Raises BehaviourError unless it is a number from 0 to 1."""
        ratio = _number(text)
        if not 0 <= ratio <= 1:
            raise BehaviourError(f"error ratio {text!r}: a share of requests from 0 to 1, e.g. '0.2'")
        return ratio

    @staticmethod
    def parse_latency(text: str | None) -> float:
        """`1.5` as 1.5 seconds; empty or None is 0. Raises BehaviourError unless it is seconds >= 0."""
        seconds = _number(text)
        if not (math.isfinite(seconds) and seconds >= 0):
            raise BehaviourError(f"latency {text!r}: seconds >= 0 added to each chat completion, e.g. '1.5'")
        return seconds

    def errors_among(self, completions: int) -> int:
        """How many of the first `completions` fail: ⌊completions · error_ratio⌋, exact for a decimal ratio."""
        return math.floor(completions * Fraction(str(self.error_ratio)))

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the simhost's wire format)."""
        return {"error_ratio": self.error_ratio, "latency_seconds": self.latency_seconds}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Degradation:
        """The inverse of `to_json`; None is no degradation. Raises BehaviourError on a value out of range."""
        data = data or {}
        return cls(
            cls.parse_error_ratio(str(data.get("error_ratio", 0))),
            cls.parse_latency(str(data.get("latency_seconds", 0))),
        )


def _number(text: str | None) -> float:
    text = (text or "").strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise BehaviourError(f"{text!r} is not a number") from None
