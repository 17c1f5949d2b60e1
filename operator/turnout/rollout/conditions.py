"""Status conditions after Kubernetes API conventions."""

from __future__ import annotations

import json
import re
from datetime import datetime

from turnout.api.status import Condition, ConditionType

MAX_MESSAGE_BYTES = 1024
"""What one message (a condition's, `lastFailureMessage`, an Event's) may take in a status patch, as JSON."""

# Control characters say nothing to a reader and cost six bytes each as JSON escapes.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CUT = "…"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with second precision, as Kubernetes writes times."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_precise_time(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, for times compared at sub-second scale."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_time(text: str | None) -> datetime | None:
    """The inverse of `format_time`; None stays None."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def bounded(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """`message` with control characters as spaces, cut ("…") to take at most `limit` bytes as JSON.

    Whatever an engine, a spec or the API server put into it, a status patch stays a few KiB.
    """
    text = _CONTROL.sub(" ", message)
    if _json_size(text) <= limit:
        return text
    budget = limit - _json_size(_CUT)
    for index, character in enumerate(text):
        budget -= _json_size(character)
        if budget < 0:
            return text[:index] + _CUT
    return text  # unreachable: the whole text did not fit


def _json_size(text: str) -> int:
    """Bytes of `text` inside a JSON string, escapes included (the API client writes ASCII JSON)."""
    return len(json.dumps(text)) - 2


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: bool,
    reason: str,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """Return `conditions` with `type_` set; lastTransitionTime moves only when status changes."""
    value = "True" if status else "False"
    previous = next((c for c in conditions if c.type == type_.value), None)
    transition = previous.last_transition_time if previous and previous.status == value else None
    updated = Condition(
        type=type_.value,
        status=value,
        reason=reason,
        message=bounded(message),
        observed_generation=generation,
        last_transition_time=transition or format_time(now),
    )
    others = [c for c in conditions if c.type != type_.value]
    return sorted([*others, updated], key=lambda c: _ORDER.get(c.type, len(_ORDER)))


def condition_status(conditions: list[Condition], type_: ConditionType) -> str | None:
    """The condition's status (True, False, Unknown), or None when it is absent."""
    found = next((c for c in conditions if c.type == type_.value), None)
    return found.status if found else None


_ORDER = {t.value: i for i, t in enumerate(ConditionType)}
