"""An apply-time check of the CRD: a CEL expression, where it applies, and the message users read.

The rules themselves live with what they check: `turnout.api.rules` for the spec as a whole, each
engine's module for its own section. `turnout.api.crd` attaches them all to the schema.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One apply-time check: a CEL expression over `self`, where `self` is the schema node at `at`."""

    at: tuple[str, ...]
    """Path of the node in the CRD schema, from the object: `("spec", "vllm")`; `"*"` is a list item."""
    rule: str
    message: str
    field_path: str | None = None
    """Where the error points, relative to `at` (`.resources.gpus`)."""


def cel_list(values: tuple[str, ...]) -> str:
    """A CEL list literal of `values`, which must hold no quote: `['a', 'b']`."""
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"
