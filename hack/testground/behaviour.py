"""How a simulated engine misbehaves, parsed from its pod's annotations.

`sim.turnout.dev/behaviour`, one of (N in seconds, a float):

- `healthy`             serves its model.
- `slow-start:N`        the socket refuses connections for N s, then serves (weights loading).
- `never-serves-model`  answers, but its model list lacks the model (see `engines` for each engine).
- `wrong-model`         answers and serves a model under another name (`other-model`).
- `fail-after:N`        serves for N s, then answers 503 on every endpoint.
- `refuse`              never binds: every connection is refused.

And how it serves its chat completions, slower and worse than instant and flawless
(`Degradation`), alongside any behaviour:

- `sim.turnout.dev/error-ratio: R` (0 to 1): that share of chat completions answers HTTP 500 with
  the engine's error body, spread evenly: of the first n completions since R was set, ⌊n·R⌋ fail
  (0.2: the 5th, 10th, 15th, ...), so 100 requests see 20 errors.
- `sim.turnout.dev/latency: N`: each chat completion waits N more seconds before it answers.
- `sim.turnout.dev/ttft: N`: a served completion's first token comes N seconds after that (time to
  first token, as prefill takes it).
- `sim.turnout.dev/tokens-per-second: N`: then its tokens come N a second, each answer at that pace
  of its own (as one sequence decodes), so a pod serving k answers at once gives k·N tokens/s.
  Unset or 0: all at once.
- `sim.turnout.dev/jitter: J` (0 to 1): each wait of the ttft and of the pace is drawn uniformly
  from (1 ± J) times its value, so the mean stays as set.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
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
    """How a simulator serves its chat completions: a share of 500s, added seconds, and its pace
    (time to first token, tokens per second, jitter). The default is instant and flawless."""

    error_ratio: float = 0.0
    latency_seconds: float = 0.0
    ttft_seconds: float = 0.0
    tokens_per_second: float = 0.0
    """0: every token at once."""
    jitter: float = 0.0

    @staticmethod
    def parse_error_ratio(text: str | None) -> float:
        """`0.2` as 0.2; empty or None is 0. Raises BehaviourError unless it is a number from 0 to 1."""
        return _share(text, "error ratio", "a share of requests from 0 to 1, e.g. '0.2'")

    @staticmethod
    def parse_latency(text: str | None) -> float:
        """`1.5` as 1.5 seconds; empty or None is 0. Raises BehaviourError unless it is seconds >= 0."""
        return _at_least_zero(text, "latency", "seconds >= 0 added to each chat completion, e.g. '1.5'")

    @staticmethod
    def parse_ttft(text: str | None) -> float:
        """`0.2` as 0.2 seconds to the first token; empty or None is 0. Raises BehaviourError unless seconds >= 0."""
        return _at_least_zero(text, "ttft", "seconds >= 0 to the first token, e.g. '0.2'")

    @staticmethod
    def parse_tokens_per_second(text: str | None) -> float:
        """`40` as 40 tokens a second; empty, None or 0 is all at once. Raises BehaviourError unless >= 0."""
        return _at_least_zero(text, "tokens per second", "output tokens a second >= 0 (0: all at once), e.g. '40'")

    @staticmethod
    def parse_jitter(text: str | None) -> float:
        """`0.1` as ±10% on each wait; empty or None is 0. Raises BehaviourError unless it is from 0 to 1."""
        return _share(text, "jitter", "a share from 0 to 1 by which each wait varies, e.g. '0.1'")

    def errors_among(self, completions: int) -> int:
        """How many of the first `completions` fail: ⌊completions · error_ratio⌋, exact for a decimal ratio."""
        return math.floor(completions * Fraction(str(self.error_ratio)))

    def waits(self, tokens: int, draw: Callable[[float, float], float]) -> list[float]:
        """Seconds before each of `tokens` tokens, from the previous one (the first: from the start):
        the ttft, then 1/tokens_per_second each, every one times `draw(1 - jitter, 1 + jitter)`."""
        gap = 1 / self.tokens_per_second if self.tokens_per_second else 0.0
        spread = (1 - self.jitter, 1 + self.jitter)
        return [
            (self.ttft_seconds if index == 0 else gap) * (draw(*spread) if self.jitter else 1.0)
            for index in range(tokens)
        ]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the simhost's wire format)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Degradation:
        """The inverse of `to_json`; None is no degradation. Raises BehaviourError on a value out of range."""
        data = data or {}
        return cls(
            cls.parse_error_ratio(str(data.get("error_ratio", 0))),
            cls.parse_latency(str(data.get("latency_seconds", 0))),
            cls.parse_ttft(str(data.get("ttft_seconds", 0))),
            cls.parse_tokens_per_second(str(data.get("tokens_per_second", 0))),
            cls.parse_jitter(str(data.get("jitter", 0))),
        )


def _share(text: str | None, what: str, hint: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise BehaviourError(f"{what} {text!r}: {hint}")
    return value


def _at_least_zero(text: str | None, what: str, hint: str) -> float:
    value = _number(text)
    if not (math.isfinite(value) and value >= 0):
        raise BehaviourError(f"{what} {text!r}: {hint}")
    return value


def _number(text: str | None) -> float:
    text = (text or "").strip()
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        raise BehaviourError(f"{text!r} is not a number") from None
