"""Template helpers of the forum pages."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from apps.accounts.models import User
from discussion import permissions

register = template.Library()


@register.simple_tag
def author_label(author: User, viewer: User) -> SafeString:
    """The author's nickname; moderators also see the account behind it."""
    if permissions.is_moderator(viewer) and author.nickname:
        return format_html('{} <span class="muted">({})</span>', author.nickname, author.username)
    return format_html("{}", author.display_name)


@register.filter
def rendered(html: str) -> SafeString:
    """A body rendered and sanitised by ``discussion.markdown`` when it was written."""
    return mark_safe(html)  # noqa: S308 - nh3-sanitised at write time (discussion/markdown.py)


@register.filter
def can_edit_post(post: object, user: User) -> bool:
    return permissions.can_edit_post(user, post)  # type: ignore[arg-type]


@register.filter
def can_delete_post(post: object, user: User) -> bool:
    return permissions.can_delete_post(user, post)  # type: ignore[arg-type]


@register.filter
def can_edit_reply(reply: object, user: User) -> bool:
    return permissions.can_edit_reply(user, reply)  # type: ignore[arg-type]


@register.filter
def can_delete_reply(reply: object, user: User) -> bool:
    return permissions.can_delete_reply(user, reply)  # type: ignore[arg-type]


@register.filter
def can_reply(post: object, user: User) -> bool:
    return permissions.can_reply(user, post)  # type: ignore[arg-type]


@register.filter
def is_moderator(user: User) -> bool:
    return permissions.is_moderator(user)


@register.filter
def in_set(value: object, items: set[object]) -> bool:
    return value in items
