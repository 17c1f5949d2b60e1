"""docs/reference.md is generated from the CRD schema (itself from the models) and kept fresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from turnout.api import reference
from turnout.api.crd import REPOSITORY_ROOT

REFERENCE_PATH = REPOSITORY_ROOT / reference.REFERENCE_FILE


def test_reference_page_is_fresh() -> None:
    assert REFERENCE_PATH.read_text() == reference.render_reference(), (
        f"{reference.REFERENCE_FILE} is stale: run `{reference.REGENERATE}` (or hack/gen-manifests)"
    )


def test_check_command_fails_on_a_stale_file_and_passes_after_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "reference.md"
    output.write_text("# stale\n")
    assert reference.main(["--check", "--output", str(output)]) == 1
    assert "is stale: run `hack/gen-manifests`" in capsys.readouterr().err
    assert reference.main(["--output", str(output)]) == 0
    assert reference.main(["--check", "--output", str(output)]) == 0


def test_every_field_is_listed_with_its_default_and_bounds() -> None:
    page = reference.render_reference()
    assert "| `spec.engine` | string |  | required; one of `vllm`, `ollama` |" in page
    assert "| `spec.vllm.gpuMemoryUtilization` | number | `0.9` |" in page
    assert "| `status.phase` |" in page
    assert "| `spec.rollout.canary.steps[].setWeight` |" in page
