"""Typed realtime events of notifications (``NotificationCreated`` lives in ``apps.core.events``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class NotificationsRead:
    """The recipient read some notifications (in another tab, perhaps): the badge's new count."""

    type: str = field(default="notification.read", init=False)
    user_id: int
    unread_count: int
