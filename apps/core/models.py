"""Cross-cutting models: the audit log of administrative writes."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class AuditEntry(models.Model):
    """One administrative write: who did what to which object, with the state before and after.

    Written in the same transaction as the change it records (``apps.core.audit.audit_record``),
    so a rolled-back change leaves no entry and a committed one always has its entry.
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, help_text=_("Kept when the actor is deleted."))
    action = models.CharField(max_length=64, db_index=True)  # e.g. "quota.set", "node.disable"
    target_type = models.CharField(max_length=64, db_index=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target_repr}"


class Lease(models.Model):
    """A named, expiring lock held by one worker (single-flight passes; see ``apps.core.leases``).

    Taken with one conditional UPDATE, so it works the same on PostgreSQL and SQLite, and a worker
    that dies mid-pass loses it when it expires instead of blocking everyone forever.
    """

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=128, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    rerun_requested = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'}"
