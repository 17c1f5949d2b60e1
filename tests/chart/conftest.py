"""Fixtures of the chart tests: the pinned helm binary and `helm template` with a values set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import pinned_helm, template

Render = Callable[[dict[str, Any] | None], list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm binary, built on first use (`hack/build-binaries.sh helm`)."""
    return pinned_helm()


@pytest.fixture
def render(helm: Path, tmp_path: Path) -> Render:
    """`helm template` of the chart with a values set (None: the chart's defaults), parsed into objects."""

    def render_values(values: dict[str, Any] | None) -> list[dict[str, Any]]:
        if values is None:
            return template(helm)
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        return template(helm, path)

    return render_values
