"""Writes of the forum. Every function takes the acting user from the caller (a view passes
``request.user``, never anything from the request body), checks permissions itself, runs in one
transaction and raises ``ApplicationError`` with a message the user can act on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.core.errors import ApplicationError, NotFound, PermissionDenied
from discussion import markdown, permissions
from discussion.choices import Category
from discussion.models import Post, Reply, Revision, Tag

TITLE_MAX = 120
BODY_MAX = 20000
TAGS_MIN, TAGS_MAX = 1, 5
TAG_RE = re.compile(r"[\w.+#-]{1,32}")


def _require_active(actor: User) -> None:
    if not actor.is_authenticated or not actor.is_active:
        raise PermissionDenied(_("Sign in to take part in the forum."))


def _clean_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise ApplicationError(_("Give the post a title."), fields={"title": [_("This field is required.")]})
    if len(title) > TITLE_MAX:
        message = _("Keep the title under %(max)d characters.") % {"max": TITLE_MAX}
        raise ApplicationError(message, fields={"title": [message]})
    return title


def _clean_body(body: str, field: str = "body") -> str:
    body = body.replace("\r\n", "\n").strip()
    if not body:
        message = _("Write something first.")
        raise ApplicationError(message, fields={field: [message]})
    if len(body) > BODY_MAX:
        message = _("Keep it under %(max)d characters.") % {"max": BODY_MAX}
        raise ApplicationError(message, fields={field: [message]})
    return body


def parse_tags(raw: str | Iterable[str]) -> list[str]:
    """Tags from a comma- or space-separated string (or a list): lower-cased, unique, in order."""
    items = re.split(r"[,\s，]+", raw) if isinstance(raw, str) else list(raw)
    tags: list[str] = []
    for item in items:
        tag = item.strip().lstrip("#").lower()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def _clean_tags(raw: str | Iterable[str]) -> list[str]:
    tags = parse_tags(raw)
    bad = [t for t in tags if not TAG_RE.fullmatch(t)]
    if bad:
        message = _("Tags are single words of up to 32 letters, digits or - _ . + #: %(bad)s") % {
            "bad": ", ".join(bad[:3])
        }
        raise ApplicationError(message, fields={"tags": [message]})
    if not TAGS_MIN <= len(tags) <= TAGS_MAX:
        message = _("Give the post between %(min)d and %(max)d tags.") % {"min": TAGS_MIN, "max": TAGS_MAX}
        raise ApplicationError(message, fields={"tags": [message]})
    return tags


def _clean_category(category: str) -> str:
    if category not in Category.values:
        message = _("Choose one of the categories.")
        raise ApplicationError(message, fields={"category": [message]})
    return category


def _set_tags(post: Post, tags: list[str]) -> None:
    objs = []
    for name in tags:
        tag, _created = Tag.objects.get_or_create(name=name)
        objs.append(tag)
    post.tags.set(objs)


@transaction.atomic
def post_create(
    *, actor: User, title: str, body: str, category: str, tags: str | Iterable[str], chain_id: int | None = None
) -> Post:
    """Create a post by ``actor``. ``chain_id`` links it to a job the actor may see."""
    _require_active(actor)
    title = _clean_title(title)
    body = _clean_body(body)
    category = _clean_category(category)
    tag_names = _clean_tags(tags)
    chain = None
    if chain_id is not None:
        from apps.experiments.selectors import chains_visible_to

        chain = chains_visible_to(user=actor).filter(pk=chain_id).first()
        if chain is None:
            raise NotFound(_("No such job."))
    rendered = markdown.render(body)
    post = Post.objects.create(
        title=title, body=body, body_html=rendered.html, category=category, author=actor, chain=chain
    )
    _set_tags(post, tag_names)
    return post


@transaction.atomic
def post_update(*, actor: User, post: Post, title: str, body: str, category: str, tags: str | Iterable[str]) -> Post:
    """Edit a post (its author while unlocked, or a moderator); the previous text becomes a revision."""
    post = Post.objects.select_for_update().get(pk=post.pk)
    if not permissions.can_edit_post(actor, post):
        raise PermissionDenied(_("You cannot edit this post."))
    title = _clean_title(title)
    body = _clean_body(body)
    category = _clean_category(category)
    tag_names = _clean_tags(tags)
    if title != post.title or body != post.body:
        Revision.objects.create(post=post, title=post.title, body=post.body, edited_by=actor)
        post.title, post.body = title, body
        post.body_html = markdown.render(body).html
        post.edited_at = timezone.now()
    post.category = category
    post.save(update_fields=["title", "body", "body_html", "category", "edited_at"])
    _set_tags(post, tag_names)
    return post


@transaction.atomic
def post_delete(*, actor: User, post: Post) -> Post:
    """Soft-delete a post: its author while nobody replied, or a moderator."""
    post = Post.objects.select_for_update().get(pk=post.pk)
    if not permissions.can_delete_post(actor, post):
        if post.author_id == actor.pk and post.reply_count:
            raise PermissionDenied(_("A post with replies cannot be deleted by its author; ask a moderator."))
        raise PermissionDenied(_("You cannot delete this post."))
    post.deleted_at = timezone.now()
    post.deleted_by = actor
    post.save(update_fields=["deleted_at", "deleted_by"])
    return post


@transaction.atomic
def reply_create(*, actor: User, post: Post, body: str, quote_id: int | None = None) -> Reply:
    """Add a reply with the next floor number of ``post`` (taken under a lock of the post row, so
    two replies at once get two floors), optionally quoting an earlier reply of the same post."""
    _require_active(actor)
    body = _clean_body(body)
    post = Post.objects.select_for_update().get(pk=post.pk)
    if not permissions.can_see_post(actor, post):
        raise NotFound(_("No such post."))
    if not permissions.can_reply(actor, post):
        raise PermissionDenied(_("This post is locked: only moderators can reply."))
    quote = None
    if quote_id is not None:
        quote = Reply.objects.filter(pk=quote_id, post=post, deleted_at__isnull=True).first()
        if quote is None:
            message = _("The reply you quote is not part of this post (or was deleted).")
            raise ApplicationError(message, fields={"quote": [message]})
    rendered = markdown.render(body)
    floor = post.next_floor
    reply = Reply.objects.create(post=post, floor=floor, body=body, body_html=rendered.html, author=actor, quote=quote)
    Post.objects.filter(pk=post.pk).update(
        next_floor=F("next_floor") + 1, reply_count=F("reply_count") + 1, last_activity_at=timezone.now()
    )
    return reply


def _lock_reply(reply: Reply) -> Reply:
    """Lock a reply's post, then the reply (the one lock order of the forum: post, then reply)."""
    post = Post.objects.select_for_update().get(pk=reply.post_id)
    locked = Reply.objects.select_for_update().get(pk=reply.pk)
    locked.post = post
    return locked


@transaction.atomic
def reply_update(*, actor: User, reply: Reply, body: str) -> Reply:
    """Edit a reply (its author while the post is unlocked, or a moderator), keeping a revision."""
    reply = _lock_reply(reply)
    if not permissions.can_edit_reply(actor, reply):
        raise PermissionDenied(_("You cannot edit this reply."))
    body = _clean_body(body)
    if body != reply.body:
        Revision.objects.create(reply=reply, body=reply.body, edited_by=actor)
        reply.body = body
        reply.body_html = markdown.render(body).html
        reply.edited_at = timezone.now()
        reply.save(update_fields=["body", "body_html", "edited_at"])
    return reply


@transaction.atomic
def reply_delete(*, actor: User, reply: Reply) -> Reply:
    """Soft-delete a reply (its author or a moderator); its floor number stays taken."""
    reply = _lock_reply(reply)
    if not permissions.can_delete_reply(actor, reply):
        raise PermissionDenied(_("You cannot delete this reply."))
    reply.deleted_at = timezone.now()
    reply.deleted_by = actor
    reply.save(update_fields=["deleted_at", "deleted_by"])
    Post.objects.filter(pk=reply.post_id).update(reply_count=F("reply_count") - 1)
    return reply
