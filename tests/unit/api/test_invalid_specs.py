"""Every invalid spec in the table is refused by `Backend.parse` with the message the user reads.

The same table is applied to a real API server in tests/e2e/test_crd_validation.py.
"""

from __future__ import annotations

import re

import pytest

from tests.unit.api.invalid_specs import INVALID_SPECS, NAME, VALID_OLLAMA_SPEC, VALID_SPEC, Case
from turnout.api import rules
from turnout.api.backend import Backend, InvalidSpec
from turnout.api.cel import Rule


@pytest.mark.parametrize("case", INVALID_SPECS)
def test_invalid_spec_is_refused_with_its_message(case: Case) -> None:
    with pytest.raises(InvalidSpec) as refused:
        Backend.parse(case.name, "ml", case.spec)
    assert case.model in str(refused.value)


@pytest.mark.parametrize("spec", [VALID_SPEC, VALID_OLLAMA_SPEC], ids=["vllm", "ollama"])
def test_the_specs_the_table_starts_from_are_valid(spec: dict[str, object]) -> None:
    Backend.parse(NAME, "ml", spec)


def test_every_apply_time_rule_has_a_case_in_the_table() -> None:
    """So each CEL rule of the CRD is exercised against the API server by the e2e test."""
    server_parts = [part for case in _cases() for part in case.server]
    untested = [
        rule.message for rule in rules.RULES if not any(head in part for head in _heads(rule) for part in server_parts)
    ]
    assert not untested, f"add a case for each of: {untested}"


def test_the_table_is_long_enough() -> None:
    assert len(_cases()) >= 40


def test_all_problems_are_reported_at_once() -> None:
    spec = {**VALID_SPEC, "resources": {"gpus": 0, "memory": "64GB"}, "engine": "vlm"}
    with pytest.raises(InvalidSpec) as refused:
        Backend.parse(NAME, "ml", spec)
    assert str(refused.value).split("; ") == [
        "spec.engine: should be 'vllm' or 'ollama' (got 'vlm')",
        "spec.resources.memory: must be a Kubernetes quantity such as 8, 500m or 64Gi (got '64GB')",
    ]


def test_a_pattern_failure_says_what_a_valid_value_looks_like_not_the_regex() -> None:
    with pytest.raises(InvalidSpec) as refused:
        Backend.parse(NAME, "ml", {**VALID_SPEC, "template": {"imagePullSecrets": ["Registry_Key"]}})
    message = str(refused.value)
    assert message == (
        "spec.template.imagePullSecrets[0]: must be a Kubernetes object name such as models or vllm-key: "
        "lowercase letters, digits, '-' and '.' (got 'Registry_Key')"
    )


def _heads(rule: Rule) -> list[str]:
    """How what the API server prints for `rule` starts: its message, or a string of its messageExpression."""
    texts = [rule.message, *re.findall(r'"((?:[^"\\]|\\.)*)"', rule.message_expression or "")]
    return [text.split("%s")[0][:20] for text in texts if len(text.split("%s")[0]) >= 10]


def _cases() -> list[Case]:
    return [param.values[0] for param in INVALID_SPECS]  # type: ignore[misc]
