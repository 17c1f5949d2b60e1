"""The inference engines turnout runs: one module each, and the registry `Engine -> EngineProfile`.

Nothing outside this package branches on the engine; it asks `profile_of(backend.engine)` (or
`backend.profile`). Adding an engine: its member of `Engine` and its options section in
`turnout.api.spec`, its module here with its profile, and its case in `_profile` below.
"""

from __future__ import annotations

from typing import assert_never

from turnout.api.spec import Engine
from turnout.engines.ollama import OLLAMA
from turnout.engines.profile import EngineProfile
from turnout.engines.vllm import VLLM

__all__ = ["ENGINES", "EngineProfile", "owned_env", "profile_of"]


def _profile(engine: Engine) -> EngineProfile:
    # A match, so that mypy refuses an Engine without a profile before any test runs.
    match engine:
        case Engine.VLLM:
            return VLLM
        case Engine.OLLAMA:
            return OLLAMA
        case _:
            assert_never(engine)


ENGINES: dict[Engine, EngineProfile] = {engine: _profile(engine) for engine in Engine}
"""Every engine's profile, in the order of `Engine`: the one mapping the rest of turnout reads."""


def profile_of(engine: Engine) -> EngineProfile:
    """The profile of `engine`; KeyError for a value no profile is registered for."""
    return ENGINES[engine]


def owned_env() -> tuple[str, ...]:
    """The environment variables that some engine sets itself, engine after engine."""
    return tuple(name for profile in ENGINES.values() for name in profile.owned_env)
