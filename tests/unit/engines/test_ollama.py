"""Ollama's profile: how it spells model names."""

from __future__ import annotations

import pytest

from turnout.engines.ollama import ollama_model_name


@pytest.mark.parametrize(
    ("name", "spelled"),
    [
        ("chat", "chat:latest"),
        ("llama3:8b", "llama3:8b"),
        ("hf.co/org/model", "hf.co/org/model:latest"),
        ("registry.local:5000/team/model", "registry.local:5000/team/model:latest"),
        ("registry.local:5000/team/model:q4", "registry.local:5000/team/model:q4"),
    ],
)
def test_ollama_model_name(name: str, spelled: str) -> None:
    assert ollama_model_name(name) == spelled
