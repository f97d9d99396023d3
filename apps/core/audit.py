"""Recording administrative writes (see ``AuditEntry``)."""

from __future__ import annotations

from typing import Any

from django.db import models

from apps.core.models import AuditEntry


def audit_record(
    *,
    actor: Any,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str = "",
    target_repr: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    note: str = "",
) -> AuditEntry:
    """Append an audit entry. Call inside the transaction of the change it records."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_repr = target_repr or str(target)[:255]
    actor_obj = actor if getattr(actor, "pk", None) is not None else None
    return AuditEntry.objects.create(
        actor=actor_obj,
        actor_name=getattr(actor, "username", "") or "system",
        action=action,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr[:255],
        before=before,
        after=after,
        note=note[:500],
    )


def snapshot(instance: models.Model, fields: list[str]) -> dict[str, Any]:
    """A JSON-safe dict of ``fields`` of ``instance`` for before/after records."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(instance, name)
        if isinstance(value, models.Model):
            value = str(value)
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        elif isinstance(value, (set, frozenset, tuple)):
            value = sorted(value)
        out[name] = value
    return out
