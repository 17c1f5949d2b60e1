"""The models give each generated variant the verdict written for it (the API server's is checked
against the models' in tests/e2e/test_crd_validation.py)."""

from __future__ import annotations

from tests.unit.api.spec_variants import VARIANTS, Variant
from turnout.api.backend import Backend, InvalidSpec


def models_refusal(variant: Variant) -> str | None:
    """The InvalidSpec message `Backend.parse` gives the variant, or None when it accepts it."""
    try:
        Backend.parse(variant.name, "default", variant.spec)
    except InvalidSpec as refused:
        return str(refused)
    return None


def test_the_models_give_each_variant_its_verdict() -> None:
    wrong = [
        f"{variant.what}: {models_refusal(variant) or 'accepted'}"
        for variant in VARIANTS
        if variant.refused is not None and (models_refusal(variant) is not None) != variant.refused
    ]
    assert wrong == []


def test_the_corpus_has_both_verdicts_and_combinations() -> None:
    verdicts = [variant.refused for variant in VARIANTS]
    assert verdicts.count(True) > 300
    assert verdicts.count(False) > 100
    assert verdicts.count(None) >= 50
    assert len({variant.what for variant in VARIANTS}) == len(VARIANTS)
