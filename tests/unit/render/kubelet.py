"""What the kubelet does to a container's args and env values before the engine sees them.

Kubernetes' rules (its `expansion` package): `$$` is a `$`; `$(NAME)` is the variable's value, or
stays as written when no such variable exists; an unclosed `$(`, and a `$` before anything else,
stay as written.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

EXPANDED = "<expanded by the kubelet>"


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """`text` as the kubelet expands it, `lookup` giving a variable's value (None: no such variable)."""
    out: list[str] = []
    index = 0
    while index < len(text):
        character = text[index]
        if character != "$" or index + 1 == len(text):
            out.append(character)
            index += 1
            continue
        following = text[index + 1]
        if following == "$":
            out.append("$")
            index += 2
        elif following == "(" and ")" in text[index + 2 :]:
            end = text.index(")", index + 2)
            name = text[index + 2 : end]
            value = lookup(name)
            out.append(f"$({name})" if value is None else value)
            index = end + 1
        else:
            out.append("$" + following)
            index += 2
    return "".join(out)


def as_the_container_sees_it(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`objects` with every container's command, args and env values expanded, every variable known:
    whatever the kubelet would expand shows as EXPANDED."""
    seen = copy.deepcopy(objects)
    for obj in seen:
        if obj.get("kind") != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            for field in ("command", "args"):
                container[field] = [expand(word, lambda _: EXPANDED) for word in container.get(field) or []]
            for entry in container.get("env") or []:
                if isinstance(entry.get("value"), str):
                    entry["value"] = expand(entry["value"], lambda _: EXPANDED)
    return seen
