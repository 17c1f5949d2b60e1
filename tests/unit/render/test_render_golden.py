"""Golden files: `turnout render -f examples/<example>.yaml` must print exactly golden/<example>.yaml.

After an intended change of the rendered objects, regenerate and review the diff:
    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/render/test_render_golden.py
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout.api.status import Color
from turnout.cli import find_backend, render_stream

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
GOLDEN = Path(__file__).parent / "golden"
EXAMPLE_NAMES = sorted(path.stem for path in EXAMPLES.glob("*.yaml"))


def render_example(name: str) -> str:
    """What `turnout render -f examples/<name>.yaml` prints (blue rendered and active)."""
    documents = list(yaml.safe_load_all((EXAMPLES / f"{name}.yaml").read_text()))
    out = io.StringIO()
    render_stream(find_backend(documents, "default"), Color.BLUE, Color.BLUE, out)
    return out.getvalue()


def test_every_example_has_a_golden_file_and_no_golden_file_is_orphaned() -> None:
    assert {"ollama-cpu", "vllm-single-gpu", "vllm-tp2-api-key", "vllm-to-ollama-fallback"} <= set(EXAMPLE_NAMES)
    assert sorted(path.stem for path in GOLDEN.glob("*.yaml")) == EXAMPLE_NAMES


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_example_renders_as_its_golden_file(name: str, kube_schema: Callable[[dict[str, Any]], None]) -> None:
    rendered = render_example(name)
    golden = GOLDEN / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(rendered)
    assert golden.exists(), f"no golden file for {name}; run with UPDATE_GOLDEN=1 and review it"
    assert rendered == golden.read_text(), (
        f"rendered examples/{name}.yaml differs from {golden.relative_to(REPO)}; if intended, "
        "regenerate with UPDATE_GOLDEN=1 and review the diff"
    )
    for obj in yaml.safe_load_all(rendered):
        kube_schema(obj)
