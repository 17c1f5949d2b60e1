"""An apply-time check of the CRD: a CEL expression, where it applies, and the message users read.

The rules themselves live with what they check: `turnout.api.rules` for the spec as a whole, each
engine's module for its own section. `turnout.api.crd` attaches them all to the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One apply-time check: a CEL expression over `self`, where `self` is the schema node at `at`."""

    at: tuple[str, ...]
    """Path of the node in the CRD schema, from the object: `("spec", "vllm")`; `"*"` is a list item."""
    rule: str
    message: str
    """What the API server prints when `message_expression` is unset or fails (e.g. on a line break)."""
    field_path: str | None = None
    """Where the error points, relative to `at` (`.resources.gpus`)."""
    message_expression: str | None = None
    """A CEL expression for the message, echoing the values given; see `cel_format`."""


def cel_string(text: str) -> str:
    """A CEL string literal of `text`: `"it's"`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cel_list(values: tuple[str, ...]) -> str:
    """A CEL list literal of strings: `["a", "b"]`."""
    return "[" + ", ".join(cel_string(value) for value in values) + "]"


def cel_map(entries: Mapping[str, str]) -> str:
    """A CEL map literal from strings to strings."""
    return "{" + ", ".join(f"{cel_string(key)}: {cel_string(value)}" for key, value in entries.items()) + "}"


def cel_join(items: str, keep: str = "true") -> str:
    """A CEL expression joining the strings of the list `items` with ", ", those for which `keep` holds.

    `keep` may use `s` (the list), `i` (the index) and `x` (the item). The API server estimates `join`
    over a list that an expression computed as unbounded, unless `transformList` rebuilt the list.
    """
    return f"[{items}].map(s, s.transformList(i, x, {keep}, x))[0].join(', ')"


def cel_format(template: str, *values: str) -> str:
    """A CEL expression that fills each `{}` of `template` with the CEL expression of `values` in turn.

    The same `template.format(...)` gives the models' message, so both layers print one sentence.
    It is one `format` call: the API server estimates concatenations of `string(int)` as unbounded.
    """
    if template.count("{}") != len(values):
        raise ValueError(f"{template!r} has {template.count('{}')} fields for {len(values)} values")
    return cel_string(template.replace("%", "%%").replace("{}", "%s")) + ".format([" + ", ".join(values) + "])"
