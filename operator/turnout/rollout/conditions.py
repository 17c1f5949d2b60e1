"""Status conditions after Kubernetes API conventions."""

from __future__ import annotations

from datetime import datetime

from turnout.api.status import Condition, ConditionType


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
        message=message,
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
