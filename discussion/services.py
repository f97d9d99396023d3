"""Writes of the forum. Every function takes the acting user from the caller (a view passes
``request.user``, never anything from the request body), checks permissions itself, runs in one
transaction and raises ``ApplicationError`` with a message the user can act on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.core.audit import audit_record
from apps.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from apps.experiments.selectors import chains_visible_to
from discussion import markdown, notify, permissions, search
from discussion.choices import Category, Moderation, ReportAction, ReportStatus
from discussion.models import Like, Post, PostView, Reply, Report, Revision, Tag

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
        chain = chains_visible_to(user=actor).filter(pk=chain_id).first()
        if chain is None:
            raise NotFound(_("No such job."))
    rendered = markdown.render(body)
    post = Post.objects.create(
        title=title, body=body, body_html=rendered.html, category=category, author=actor, chain=chain
    )
    _set_tags(post, tag_names)
    search.post_changed(post.pk)
    notify.mentions(actor=actor, post=post, reply=None, usernames=rendered.mentions, skip={actor.pk})
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
    search.post_changed(post.pk)
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
    if post.author_id != actor.pk:
        audit_record(actor=actor, action="forum.post.delete", target=post)
        notify.moderated(actor=actor, post=post, reply=None, action="delete")
    search.post_changed(post.pk)
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
    post_hotness_refresh(post_id=post.pk)
    search.post_changed(post.pk)
    notify.reply_created(actor=actor, post=post, reply=reply, mentioned=rendered.mentions)
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
        search.post_changed(reply.post_id)
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
    if reply.author_id != actor.pk:
        audit_record(actor=actor, action="forum.reply.delete", target=reply)
        notify.moderated(actor=actor, post=reply.post, reply=reply, action="delete")
    post_hotness_refresh(post_id=reply.post_id)
    search.post_changed(reply.post_id)
    return reply


# --- likes, views, hotness -----------------------------------------------------------------------

# Hotness (Reddit's "hot" rank): log10 of an activity score plus the post's age in units of
# HOT_SECONDS, so a post needs ten times the activity to stay level with one 12.5 hours younger.
# Time is in the score itself, so a stored value never goes stale and the list is one index scan.
# Activity as HAI weighs it: a view 1, a reply 20, a like on the post or one of its replies 10.
HOT_SECONDS = 45000.0
HOT_EPOCH = 1_700_000_000  # 2023-11-14: any fixed origin works; keeps the numbers small


def hotness(*, views: int, replies: int, likes: int, created_epoch: float) -> float:
    """The stored ``Post.hotness`` for these counts (pure)."""
    activity = views + 20 * replies + 10 * likes
    return round(math.log10(max(activity, 1)) + (created_epoch - HOT_EPOCH) / HOT_SECONDS, 7)


def post_hotness_refresh(*, post_id: int) -> None:
    """Recompute one post's hotness from its counters (inside the caller's transaction)."""
    post = Post.objects.filter(pk=post_id).values("view_count", "reply_count", "like_count", "created_at").first()
    if post is None:
        return
    reply_likes = (
        Reply.objects.filter(post_id=post_id, deleted_at__isnull=True).aggregate(n=Sum("like_count"))["n"] or 0
    )
    value = hotness(
        views=post["view_count"],
        replies=post["reply_count"],
        likes=post["like_count"] + reply_likes,
        created_epoch=post["created_at"].timestamp(),
    )
    Post.objects.filter(pk=post_id).update(hotness=value)


@dataclass(frozen=True)
class LikeState:
    liked: bool
    count: int


@transaction.atomic
def like_toggle(*, actor: User, post: Post | None = None, reply: Reply | None = None) -> LikeState:
    """Like ``post`` or ``reply`` if ``actor`` has not, else take the like back.

    Exact under concurrency: a like is a row under a unique constraint, and the counter moves
    only by what this transaction really inserted or deleted (an insert that loses a race with
    the same person's other click, or a delete that finds nothing, does not move it).
    """
    _require_active(actor)
    if (post is None) == (reply is None):
        raise ApplicationError(_("Like either a post or a reply."))
    # Decide on the rows as they are now, not on the caller's copies.
    if reply is not None:
        reply = Reply.objects.get(pk=reply.pk)
    target_post = Post.objects.get(pk=post.pk if post is not None else reply.post_id)  # type: ignore[union-attr]
    if not permissions.can_see_post(actor, target_post) or target_post.is_deleted:
        raise NotFound(_("No such post."))
    if reply is not None and reply.is_deleted:
        raise NotFound(_("No such reply."))
    model: type[Post] | type[Reply] = Post if post is not None else Reply
    target_id = post.pk if post is not None else reply.pk  # type: ignore[union-attr]
    key = {"post_id": target_id} if post is not None else {"reply_id": target_id}
    deleted, _per_model = Like.objects.filter(user=actor, **key).delete()
    if deleted:
        model.objects.filter(pk=target_id).update(like_count=F("like_count") - 1)
        liked = False
    else:
        try:
            with transaction.atomic():
                Like.objects.create(user=actor, **key)
        except IntegrityError:
            liked = True  # the same person's other click inserted it first; the count has it
        else:
            model.objects.filter(pk=target_id).update(like_count=F("like_count") + 1)
            liked = True
            notify.liked(actor=actor, post=target_post, reply=reply)
    post_hotness_refresh(post_id=target_post.pk)
    count = model.objects.filter(pk=target_id).values_list("like_count", flat=True).get()
    return LikeState(liked=liked, count=count)


@transaction.atomic
def post_view_record(*, actor: User, post: Post) -> bool:
    """Count ``actor``'s first visit of ``post`` (later visits change nothing). True if counted."""
    if not actor.is_authenticated or PostView.objects.filter(user=actor, post=post).exists():
        return False
    try:
        with transaction.atomic():
            PostView.objects.create(user=actor, post=post)
    except IntegrityError:
        return False  # a second tab of the same person counted it a moment ago
    Post.objects.filter(pk=post.pk).update(view_count=F("view_count") + 1)
    post_hotness_refresh(post_id=post.pk)
    return True


# --- moderation -----------------------------------------------------------------------------------

_SWITCHES = {
    Moderation.PIN: ("pinned", True),
    Moderation.UNPIN: ("pinned", False),
    Moderation.LOCK: ("locked", True),
    Moderation.UNLOCK: ("locked", False),
    Moderation.HIDE: ("hidden", True),
    Moderation.UNHIDE: ("hidden", False),
}


@transaction.atomic
def post_moderate(*, actor: User, post: Post, action: str) -> Post:
    """Pin, lock or hide a post (or undo it). Moderators only; audited."""
    if not permissions.is_moderator(actor):
        raise PermissionDenied(_("Only moderators can pin, lock or hide posts."))
    if action not in _SWITCHES:
        raise ApplicationError(_("Unknown moderation action."), fields={"action": [_("Choose an action.")]})
    post = Post.objects.select_for_update().get(pk=post.pk)
    field, value = _SWITCHES[Moderation(action)]
    before = getattr(post, field)
    if before != value:
        setattr(post, field, value)
        post.save(update_fields=[field])
        audit_record(
            actor=actor, action=f"forum.post.{action}", target=post, before={field: before}, after={field: value}
        )
        search.post_changed(post.pk)
        notify.moderated(actor=actor, post=post, reply=None, action=str(action))
    return post


REASON_MAX = 500


@transaction.atomic
def report_create(*, actor: User, reason: str, post: Post | None = None, reply: Reply | None = None) -> Report:
    """Report a post or a reply to the moderators (once per person while the report is open)."""
    _require_active(actor)
    if (post is None) == (reply is None):
        raise ApplicationError(_("Report either a post or a reply."))
    target_post = Post.objects.get(pk=post.pk if post is not None else reply.post_id)  # type: ignore[union-attr]
    if not permissions.can_see_post(actor, target_post) or (reply is not None and reply.is_deleted):
        raise NotFound(_("No such post."))
    reason = " ".join(reason.split())
    if not reason:
        message = _("Say what is wrong, so moderators know what to look at.")
        raise ApplicationError(message, fields={"reason": [message]})
    if len(reason) > REASON_MAX:
        message = _("Keep the reason under %(max)d characters.") % {"max": REASON_MAX}
        raise ApplicationError(message, fields={"reason": [message]})
    try:
        with transaction.atomic():
            return Report.objects.create(reporter=actor, post=post, reply=reply, reason=reason)
    except IntegrityError as exc:
        raise Conflict(_("You already reported this; moderators will look at it.")) from exc


@transaction.atomic
def report_resolve(*, actor: User, report: Report, action: str) -> Report:
    """Close a report: dismiss it, hide the post, or delete what was reported. Every other open
    report of the same item is closed the same way. Moderators only; audited."""
    if not permissions.is_moderator(actor):
        raise PermissionDenied(_("Only moderators handle reports."))
    if action not in ReportAction.values:
        raise ApplicationError(_("Unknown moderation action."), fields={"action": [_("Choose an action.")]})
    report = Report.objects.select_for_update(of=("self",)).select_related("post", "reply__post").get(pk=report.pk)
    if report.status != ReportStatus.OPEN:
        raise Conflict(_("This report was already handled."))
    post = report.post if report.post is not None else report.reply.post  # type: ignore[union-attr]
    if action == ReportAction.HIDE:
        post_moderate(actor=actor, post=post, action=Moderation.HIDE)
    elif action == ReportAction.DELETE:
        if report.reply is not None:
            if not report.reply.is_deleted:
                reply_delete(actor=actor, reply=report.reply)
        elif not post.is_deleted:
            post_delete(actor=actor, post=post)
    status = ReportStatus.DISMISSED if action == ReportAction.DISMISS else ReportStatus.RESOLVED
    same_item = Report.objects.filter(status=ReportStatus.OPEN, post=report.post, reply=report.reply)
    same_item.update(status=status, handled_by=actor, handled_at=timezone.now())
    audit_record(actor=actor, action=f"forum.report.{action}", target=report, note=report.reason)
    report.refresh_from_db()
    return report
