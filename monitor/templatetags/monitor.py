"""Template helpers of the admin pages (and the portal's link to them)."""

from __future__ import annotations

import json
from typing import Any

from django import template

from monitor.access import Power, has_power

register = template.Library()


@register.filter
def can_monitor(user: Any) -> bool:
    """True for members of an admin group: the top bar links to /monitor for them."""
    return has_power(user, Power.VIEW)


@register.simple_tag
def cell_value(cell: Any, submitted: dict[str, str]) -> str:
    """What a quota input shows: the value just submitted (after an error), else the own value."""
    if cell.key in submitted:
        return submitted[cell.key]
    return "" if cell.own is None else str(cell.own)


@register.filter
def ms(seconds: float | None) -> str:
    """Seconds as whole milliseconds ("183"), for durations of passes."""
    return "" if seconds is None else str(round(seconds * 1000))


@register.filter
def audit_json(value: Any) -> str:
    """A before/after record as short ``key: value`` lines (escaped by the template)."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in sorted(value.items()))
    return json.dumps(value, ensure_ascii=False)
