"""What users read names only commands that exist: the CRD's descriptions, Event and condition
messages (every string in operator/turnout), examples, the READMEs, docs and the chart's notes."""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterator
from pathlib import Path

from turnout.cli import build_parser
from turnout.plugin.command import VERBS

REPO = Path(__file__).resolve().parents[2]
TEXT_FILES = [
    "README.md",
    "docs/**/*.md",
    "examples/*.yaml",
    "crds/*.yaml",
    "manifests/*.yaml",
    "charts/turnout/README.md",
    "charts/turnout/values.yaml",
    "charts/turnout/templates/NOTES.txt",
    "charts/turnout/crds/*.yaml",
    "hack/**/README.md",
]
# The kubectl plugin's verbs (turnout.plugin.command).
KUBECTL_TURNOUT_COMMANDS: frozenset[str] = frozenset(VERBS)
# `kubectl turnout VERB` anywhere; `turnout VERB` as code: in backticks or after a shell prompt.
KUBECTL_TURNOUT = re.compile(r"kubectl[ -]turnout +([a-z][a-z-]*)")
TURNOUT = re.compile(r"(?:`|^\s*\$ )turnout +([a-z][a-z-]*)", re.MULTILINE)


def commands_named(text: str) -> set[str]:
    """The turnout commands `text` tells someone to run, as `turnout VERB` or `kubectl turnout VERB`."""
    return {f"kubectl turnout {verb}" for verb in KUBECTL_TURNOUT.findall(text)} | {
        f"turnout {verb}" for verb in TURNOUT.findall(text)
    }


def existing_commands() -> set[str]:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {f"turnout {verb}" for verb in commands.choices} | {
        f"kubectl turnout {verb}" for verb in KUBECTL_TURNOUT_COMMANDS
    }


def user_texts() -> Iterator[tuple[str, str]]:
    """(file, text) of each text a user reads: whole files, and each string in the operator's code."""
    for pattern in TEXT_FILES:
        for path in sorted(REPO.glob(pattern)):
            yield str(path.relative_to(REPO)), path.read_text()
    for path in sorted((REPO / "operator" / "turnout").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield str(path.relative_to(REPO)), node.value


def test_user_texts_name_only_commands_that_exist() -> None:
    exists = existing_commands()
    named = {(where, command) for where, text in user_texts() for command in commands_named(text)}
    missing = {(where, command) for where, command in named if command not in exists}
    assert missing == set(), f"texts name commands that do not exist (there are {sorted(exists)})"


def test_the_walk_reads_the_docs_the_crd_the_chart_notes_and_the_event_messages() -> None:
    walked = {where for where, _ in user_texts()}
    for where in (
        "README.md",
        "docs/runbook.md",
        "docs/migration.md",
        "docs/reference.md",
        "crds/turnout.dev_inferencebackends.yaml",
        "charts/turnout/templates/NOTES.txt",
        "examples/vllm-tp2-api-key.yaml",
        "operator/turnout/rollout/bluegreen.py",
        "operator/turnout/cli.py",
    ):
        assert where in walked


def test_commands_are_told_apart_from_prose() -> None:
    assert commands_named("aborted by kubectl turnout abort") == {"kubectl turnout abort"}
    assert commands_named("waiting for `kubectl turnout promote`") == {"kubectl turnout promote"}
    assert commands_named("run `turnout render -f x.yaml`, or\n  $ turnout bench") == {
        "turnout render",
        "turnout bench",
    }
    prose = "turnout sets the selector; `turnout.dev/promote`; the `kubectl turnout` plugin; kubectl turnout: none yet"
    assert commands_named(prose) == set()
