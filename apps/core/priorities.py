"""Job priorities. HAI's names and numbers, kept because users and scripts know them."""

from __future__ import annotations

from django.db import models


class Priority(models.IntegerChoices):
    EXTREME_HIGH = 50, "EXTREME_HIGH"
    VERY_HIGH = 40, "VERY_HIGH"
    HIGH = 30, "HIGH"
    ABOVE_NORMAL = 20, "ABOVE_NORMAL"
    NORMAL = 10, "NORMAL"
    UNDER_NORMAL = 8, "UNDER_NORMAL"
    BELOW_NORMAL = 5, "BELOW_NORMAL"
    LOW = 0, "LOW"
    AUTO = -1, "AUTO"


# Levels a quota can be set for (AUTO is a request, not a level), highest first.
QUOTA_LEVELS: tuple[Priority, ...] = tuple(p for p in Priority if p != Priority.AUTO)


def parse_priority(value: int | str) -> Priority:
    """Accept a number (30), a numeric string ("30") or a name ("HIGH", "high"). Raises ValueError."""
    names = ", ".join(p.name for p in Priority)
    text = str(value).strip()
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return Priority(value)
        if text.lstrip("-").isdigit():
            return Priority(int(text))
        return Priority[text.upper()]
    except (KeyError, ValueError):
        raise ValueError(f"Unknown priority {value!r}: use one of {names} or its number") from None
