"""Typed realtime events shared by several apps. Unknown fields are rejected at construction.

``NotificationCreated`` is for the forum's notifications (reply, quote, like), pushed to
``user.<id>`` with the recipient's unread count so the badge updates without polling. Nothing
emits it yet: the forum will, from its notification service, after commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class NotificationCreated:
    type: str = field(default="notification.created", init=False)
    notification_id: int
    user_id: int
    kind: str
    title: str
    url: str
    unread_count: int
