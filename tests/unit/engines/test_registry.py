"""The registry: every Engine has a profile, and the profiles say what DESIGN.md's engine table says."""

from __future__ import annotations

import pytest

from turnout.api.rules import OWNED_ENV, RULES
from turnout.api.spec import Engine, InferenceBackendSpec
from turnout.engines import ENGINES, owned_env, profile_of
from turnout.engines.ollama import OLLAMA
from turnout.engines.vllm import VLLM


def test_every_engine_has_a_profile_and_nothing_else_does() -> None:
    assert list(ENGINES) == list(Engine)
    for engine in Engine:
        assert profile_of(engine) is ENGINES[engine]


def test_each_profile_is_its_engines_module() -> None:
    assert profile_of(Engine.VLLM) is VLLM
    assert profile_of(Engine.OLLAMA) is OLLAMA


@pytest.mark.parametrize(
    ("engine", "image", "port", "gpus", "metrics_path"),
    [
        (Engine.VLLM, "vllm/vllm-openai:", 8000, 1, "/metrics"),
        (Engine.OLLAMA, "ollama/ollama:", 11434, 0, None),
    ],
)
def test_profiles_hold_the_engine_facts(
    engine: Engine, image: str, port: int, gpus: int, metrics_path: str | None
) -> None:
    profile = profile_of(engine)
    assert profile.image.startswith(image)
    assert profile.port == port
    assert profile.default_gpus == gpus
    assert (profile.metrics.path if profile.metrics else None) == metrics_path


def test_each_profile_reads_its_own_section_of_the_spec() -> None:
    spec = InferenceBackendSpec.model_validate(
        {"engine": "vllm", "model": {"name": "m"}, "vllm": {"model": "a"}, "ollama": {"model": "b"}}
    )
    assert VLLM.options(spec) is spec.vllm
    assert OLLAMA.options(spec) is spec.ollama


def test_only_vllm_takes_an_api_key() -> None:
    spec = InferenceBackendSpec.model_validate(
        {"engine": "vllm", "model": {"name": "m"}, "vllm": {"apiKeySecretRef": {"name": "key", "key": "token"}}}
    )
    assert VLLM.api_key_ref(spec) is spec.vllm.api_key_secret_ref
    assert VLLM.api_key_field == "spec.vllm.apiKeySecretRef"
    assert OLLAMA.api_key_ref(spec) is None
    assert OLLAMA.api_key_field is None


def test_owned_env_is_every_engines_in_registry_order_without_repeats() -> None:
    assert owned_env() == OWNED_ENV == (*VLLM.owned_env, *OLLAMA.owned_env)
    assert len(set(OWNED_ENV)) == len(OWNED_ENV)


def test_every_engine_rule_is_in_the_crd_rules() -> None:
    for profile in ENGINES.values():
        assert profile.crd_rules
        assert set(profile.crd_rules) <= set(RULES)
