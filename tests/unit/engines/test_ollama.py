"""Ollama's profile: model names as Ollama reads, compares and lists them, and the served names it can alias."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnout.api.backend import Backend, InvalidSpec
from turnout.engines.ollama import SERVED_NAME_PATTERN, OllamaName, ollama_model_name


@pytest.mark.parametrize(
    ("name", "spelled"),
    [
        ("chat", "chat:latest"),
        ("llama3:8b", "llama3:8b"),
        ("hf.co/org/model", "hf.co/org/model:latest"),
        ("registry.local:5000/team/model", "registry.local:5000/team/model:latest"),
        ("registry.local:5000/team/model:q4", "registry.local:5000/team/model:q4"),
        ("library/chat", "chat:latest"),
        ("registry.ollama.ai/library/chat:v1", "chat:v1"),
        ("Registry.Ollama.AI/team/Chat", "team/Chat:latest"),
        ("https://registry.local/team/model", "registry.local/team/model:latest"),
    ],
)
def test_ollama_model_name(name: str, spelled: str) -> None:
    assert ollama_model_name(name) == spelled


@pytest.mark.parametrize(
    ("listed", "wanted"),
    [
        ("chat:latest", "library/chat:latest"),
        ("chat:latest", "registry.ollama.ai/library/chat"),
        ("Chat:latest", "chat"),
        ("chat:LATEST", "CHAT"),
        ("team/chat:v1", "registry.ollama.ai/team/chat:v1"),
        ("hf.co/org/model:latest", "HF.co/org/model"),
    ],
)
def test_names_ollama_holds_the_same_are_the_same(listed: str, wanted: str) -> None:
    assert OllamaName.parse(listed).same_as(OllamaName.parse(wanted))


@pytest.mark.parametrize(
    ("listed", "wanted"),
    [("chat:8b", "chat"), ("team/chat:latest", "chat"), ("hf.co/library/chat:latest", "chat"), ("chat2", "chat")],
)
def test_other_models_are_other_names(listed: str, wanted: str) -> None:
    assert not OllamaName.parse(listed).same_as(OllamaName.parse(wanted))


def ollama(served_name: str, name: str = "chat") -> Backend:
    spec = {"engine": "ollama", "model": {"name": "llama3:8b", "servedName": served_name}}
    return Backend.parse(name, "ml", spec)


@pytest.mark.parametrize(
    "served_name", ["chat", "library/chat:latest", "hf.co/org/model:q4", "registry.local:5000/team/m", "Chat.v2:1.5"]
)
def test_served_names_ollama_can_alias_are_taken(served_name: str) -> None:
    assert ollama(served_name).served_name == served_name


@pytest.mark.parametrize(
    "served_name",
    [
        "m" * 81,  # a model of more than 80 characters
        "chat:" + "t" * 81,
        "hf.co/model",  # two parts are namespace/model, and a namespace has no '.'
        "a/b/c/d",  # a host has no '/'
        "chat:v1:x",
        "org/chat:",
        "https://registry.local/team/model",  # Ollama would drop the scheme: clients would send another name
    ],
)
def test_served_names_ollama_cannot_alias_are_refused_with_its_rule(served_name: str) -> None:
    with pytest.raises(InvalidSpec) as refused:
        ollama(served_name)
    assert str(refused.value) == (
        "spec.model.servedName: with engine ollama, the served name must be a name Ollama can alias, "
        "[host/][namespace/]model[:tag]: each part starts with a letter, digit or '_'; model and tag have at "
        "most 80 letters, digits, '_', '-' or '.'; a namespace at most 80 letters, digits, '_' or '-'; a host "
        f"at most 350 of those, '.' or ':' (got {served_name!r})"
    )


def test_vllm_keeps_its_own_served_names() -> None:
    spec = {"engine": "vllm", "model": {"name": "org/model", "servedName": "hf.co/model"}}
    assert Backend.parse("chat", "ml", spec).served_name == "hf.co/model"


# Names near the rule's edges: its characters, separators in every place, and parts around 80 characters.
names = st.lists(
    st.sampled_from(["a", "Z", "0", "_", "-", ".", ":", "/", "://", "é", "m" * 40]), min_size=1, max_size=12
).map("".join)


@given(names | st.from_regex(SERVED_NAME_PATTERN, fullmatch=True))
def test_the_pattern_for_the_crd_is_ollamas_rule_without_a_scheme(name: str) -> None:
    """What the CRD's rule will say (the pattern) is what the parser says, for a name with no URL scheme."""
    assert bool(re.fullmatch(SERVED_NAME_PATTERN, name)) == (OllamaName.parse(name).is_valid() and "://" not in name)
