"""Notifications: one row per thing to tell a person, aggregated while unread.

Events of the same ``group_key`` (e.g. ``like:post:12``) merge into the recipient's one unread row
for it: the actor joins ``actor_names`` and ``count`` grows ("3 people liked …"). A partial unique
constraint (one unread row per recipient and key) makes the merge safe when two events race. Text
is never stored as HTML: rows keep names, a title and a URL, and templates escape them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.notifications.choices import NotificationKind


class Notification(models.Model):
    """Something a person should know about: a reply, quote, like, mention, moderation or notice."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)
    group_key = models.CharField(max_length=200)
    target_url = models.CharField(max_length=300, blank=True)
    target_title = models.CharField(max_length=200, blank=True)
    detail = models.CharField(max_length=500, blank=True, help_text=_("A moderation action, or a notice's text."))
    actor_ids = models.JSONField(default=list)
    actor_names = models.JSONField(default=list)
    count = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [
            models.UniqueConstraint(
                fields=["recipient", "group_key"],
                condition=Q(read_at__isnull=True),
                name="notification_one_unread_per_key",
            )
        ]
        indexes = [models.Index(fields=["recipient", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return f"{self.kind} for {self.recipient_id}"


class NotificationMute(models.Model):
    """A kind of notification a person chose not to get."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_mutes")
    kind = models.CharField(max_length=16, choices=NotificationKind.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="notification_mute_once")]

    def __str__(self) -> str:
        return f"{self.user_id} mutes {self.kind}"
