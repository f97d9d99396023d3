"""Reading notifications."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import User
from apps.notifications.choices import NotificationKind
from apps.notifications.models import Notification, NotificationMute


def notifications_of(*, user: User, unread_only: bool = False, kind: str = "") -> QuerySet[Notification]:
    rows = Notification.objects.filter(recipient=user)
    if unread_only:
        rows = rows.filter(read_at__isnull=True)
    if kind in NotificationKind.values:
        rows = rows.filter(kind=kind)
    return rows.order_by("-updated_at", "-id")


def enabled_kinds(*, user: User) -> set[str]:
    muted = set(NotificationMute.objects.filter(user=user).values_list("kind", flat=True))
    return {kind.value for kind in NotificationKind if kind.value not in muted}
