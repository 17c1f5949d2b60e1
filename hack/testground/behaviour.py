"""How a simulated engine misbehaves, parsed from the pod annotation `sim.turnout.dev/behaviour`.

Spellings (N in seconds, a float):

- `healthy`             serves its model.
- `slow-start:N`        the socket refuses connections for N s, then serves (weights loading).
- `never-serves-model`  answers, but its model list lacks the model (see `engines` for each engine).
- `wrong-model`         answers and serves a model under another name (`other-model`).
- `fail-after:N`        serves for N s, then answers 503 on every endpoint.
- `refuse`              never binds: every connection is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
