"""The real node's vLLM image: how it turns the pod's rendered `vllm serve` into one on the tiny model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testground.vllm_command import serve_argv
from turnout.api.backend import Backend
from turnout.api.status import Color
from turnout.render.deployment import render_deployment

TINY = "/cache/models/tiny-llama"


def test_the_rendered_model_is_mapped_and_served_under_the_name_the_pod_gives() -> None:
    spec = {"engine": "vllm", "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "chat"}}
    container = render_deployment(Backend.parse("chat", "ns", spec), Color.BLUE, 1)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"] == ["vllm", "serve"]
    argv = serve_argv(["serve", *container["args"]], TINY, [])
    assert argv == ["serve", TINY, *container["args"][1:]]
    assert "--served-model-name=chat" in argv


@pytest.mark.parametrize(
    "given",
    [["serve", "org/model", "--port=8000"], ["serve", "--model", "org/model", "--port=8000"],
     ["serve", "--model=org/model", "--port=8000"]],
)  # fmt: skip
def test_without_a_served_name_the_model_s_own_name_is_served(given: list[str]) -> None:
    assert serve_argv(given, TINY, []) == ["serve", TINY, "--port=8000", "--served-model-name", "org/model"]


def test_an_image_s_own_arguments_come_last_and_other_commands_pass_untouched() -> None:
    appended = ["--served-model-name", "baked-name"]
    assert serve_argv(["serve", "m", "--served-model-name=chat"], TINY, appended) == [
        "serve", TINY, "--served-model-name=chat", *appended,
    ]  # fmt: skip
    assert serve_argv(["--version"], TINY, appended) == ["--version"]


def test_the_base_prefix_of_a_virtualenv_is_its_home_s_parent(tmp_path: Path) -> None:
    from testground.real_vllm import _base_prefix

    (tmp_path / "pyvenv.cfg").write_text(f"home = {Path(sys.base_prefix) / 'bin'}\nversion = 3.11\n")
    assert _base_prefix(tmp_path) == Path(sys.base_prefix)
