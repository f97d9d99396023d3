"""The unread count for the navigation bar."""

from __future__ import annotations

from django import template

from apps.notifications.services import unread_count

register = template.Library()


@register.simple_tag(takes_context=True)
def unread_notifications(context: template.Context) -> int:
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return 0
    return unread_count(user_id=user.pk)
