"""Who the forum tells about what (through ``apps.notifications``), called by the services inside
their transactions. Aggregation keys: one unread row per post for replies and mentions, per reply
for quotes, per item for likes."""

from __future__ import annotations

from django.urls import reverse

from apps.accounts.models import User
from apps.notifications.choices import NotificationKind
from apps.notifications.services import notify
from discussion.models import Post, Reply


def _url(post: Post, reply: Reply | None = None) -> str:
    url = reverse("discussion:post-detail", args=[post.pk])
    return url + (f"#floor-{reply.floor}" if reply is not None else "")


def mentions(*, actor: User, post: Post, reply: Reply | None, usernames: set[str], skip: set[int]) -> None:
    for user in User.objects.filter(username__in=usernames, is_active=True).exclude(pk__in=skip):
        notify(
            recipient=user,
            kind=NotificationKind.MENTION,
            group_key=f"mention:post:{post.pk}",
            actor=actor,
            target_url=_url(post, reply),
            target_title=post.title,
        )


def reply_created(*, actor: User, post: Post, reply: Reply, mentioned: set[str]) -> None:
    told = {actor.pk}
    notify(
        recipient=post.author,
        kind=NotificationKind.REPLY,
        group_key=f"reply:post:{post.pk}",
        actor=actor,
        target_url=_url(post, reply),
        target_title=post.title,
    )
    told.add(post.author_id)
    if reply.quote is not None and reply.quote.author_id not in told:
        notify(
            recipient=reply.quote.author,
            kind=NotificationKind.QUOTE,
            group_key=f"quote:reply:{reply.quote.pk}",
            actor=actor,
            target_url=_url(post, reply),
            target_title=post.title,
        )
        told.add(reply.quote.author_id)
    mentions(actor=actor, post=post, reply=reply, usernames=mentioned, skip=told)


def liked(*, actor: User, post: Post, reply: Reply | None) -> None:
    author = reply.author if reply is not None else post.author
    key = f"like:reply:{reply.pk}" if reply is not None else f"like:post:{post.pk}"
    notify(
        recipient=author,
        kind=NotificationKind.LIKE,
        group_key=key,
        actor=actor,
        target_url=_url(post, reply),
        target_title=post.title,
    )


def moderated(*, actor: User, post: Post, reply: Reply | None, action: str) -> None:
    """A moderator acted on someone's writing: tell its author (never who the moderator is)."""
    author = reply.author if reply is not None else post.author
    target = f"reply:{reply.pk}" if reply is not None else f"post:{post.pk}"
    notify(
        recipient=author,
        kind=NotificationKind.MODERATION,
        group_key=f"moderation:{action}:{target}",
        actor=None if author.pk != actor.pk else actor,
        target_url=_url(post, reply),
        target_title=post.title,
        detail=action,
    )
