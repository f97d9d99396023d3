"""The forum's data: posts, their numbered replies, tags and the edit history.

Bodies are stored twice: ``body`` is the author's Markdown (what the editor shows), ``body_html``
its sanitised rendering (``discussion/markdown.py``), made once when the text is written so that
pages never render Markdown and never show anything nh3 did not pass. Nothing is ever deleted by a
person: deleting sets ``deleted_at`` (soft delete) so floors keep their numbers and quotes can say
that what they quote is gone.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from discussion.choices import Category, ReportStatus


class Tag(models.Model):
    """A free-form label on posts (1–5 per post), lower-cased, unique by name."""

    name = models.CharField(_("name"), max_length=32, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self) -> str:
        return self.name


class Post(models.Model):
    """A topic: title, Markdown body, one category and 1–5 tags, and its replies.

    The author comes from the session only. ``next_floor`` hands out reply floor numbers under a
    lock of this row (see ``services.reply_create``); ``reply_count`` counts replies that are not
    deleted. ``pinned`` / ``locked`` / ``hidden`` are set by moderators only.
    """

    title = models.CharField(_("title"), max_length=120)
    body = models.TextField(_("body"), max_length=20000)
    body_html = models.TextField(editable=False)
    category = models.CharField(_("category"), max_length=16, choices=Category.choices, default=Category.QUESTION)
    tags = models.ManyToManyField(Tag, related_name="posts", verbose_name=_("tags"))
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="forum_posts")
    chain = models.ForeignKey(
        "experiments.Chain",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="forum_posts",
        verbose_name=_("job"),
        help_text=_("The job this post discusses, when it was opened from a job's page."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(auto_now_add=True, db_index=True)
    next_floor = models.PositiveIntegerField(default=1, editable=False)
    reply_count = models.PositiveIntegerField(default=0)
    like_count = models.PositiveIntegerField(default=0)
    view_count = models.PositiveIntegerField(default=0)
    hotness = models.FloatField(default=0.0, db_index=True)
    pinned = models.BooleanField(_("pinned"), default=False)
    locked = models.BooleanField(_("locked"), default=False)
    hidden = models.BooleanField(_("hidden"), default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Search (discussion/search/): the title and the body with its live replies as index tokens.
    # On PostgreSQL a generated ``search_vector`` column and GIN indexes are built from these by
    # migration 0003 (not fields here: the embedded SQLite has no such types).
    search_title = models.TextField(blank=True, default="", editable=False)
    search_document = models.TextField(blank=True, default="", editable=False)

    class Meta:
        ordering = ["-pinned", "-last_activity_at", "-id"]
        verbose_name = _("post")
        verbose_name_plural = _("posts")
        indexes = [
            models.Index(fields=["-pinned", "-last_activity_at", "-id"], name="post_latest"),
            models.Index(fields=["author", "-created_at"], name="post_author"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Reply(models.Model):
    """An answer to a post, numbered by ``floor`` (1, 2, … per post, never reused), optionally
    quoting an earlier reply of the same post."""

    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="replies")
    floor = models.PositiveIntegerField()
    body = models.TextField(_("reply"), max_length=20000)
    body_html = models.TextField(editable=False)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="forum_replies")
    quote = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="quoted_by", verbose_name=_("quote")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    like_count = models.PositiveIntegerField(default=0)
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["post", "floor"]
        verbose_name = _("reply")
        verbose_name_plural = _("replies")
        constraints = [models.UniqueConstraint(fields=["post", "floor"], name="reply_unique_floor")]

    def __str__(self) -> str:
        return f"#{self.post_id} floor {self.floor}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class SearchWord(models.Model):
    """A word (Latin script, lower-cased) that occurs in some post's title, body or replies: the
    vocabulary PostgreSQL's typo tolerance looks a misspelt query word up in (trigram index,
    migration 0005), the approach of pg_trgm's documentation ("Text Search Integration"). Words are
    added as posts are written and never removed: a stale word only costs a lookup that finds
    nothing."""

    word = models.CharField(max_length=64, unique=True)

    class Meta:
        verbose_name = _("search word")
        verbose_name_plural = _("search words")

    def __str__(self) -> str:
        return self.word


class Revision(models.Model):
    """What a post or a reply said before an edit (one row per edit), and who edited it."""

    post = models.ForeignKey(Post, null=True, blank=True, on_delete=models.CASCADE, related_name="revisions")
    reply = models.ForeignKey(Reply, null=True, blank=True, on_delete=models.CASCADE, related_name="revisions")
    title = models.CharField(max_length=120, blank=True)
    body = models.TextField()
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    edited_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-edited_at", "-id"]
        verbose_name = _("revision")
        verbose_name_plural = _("revisions")
        constraints = [
            models.CheckConstraint(
                condition=(Q(post__isnull=False) & Q(reply__isnull=True))
                | (Q(post__isnull=True) & Q(reply__isnull=False)),
                name="revision_of_post_or_reply",
            )
        ]

    def __str__(self) -> str:
        return f"revision {self.pk}"


def _one_target() -> Q:
    return (Q(post__isnull=False) & Q(reply__isnull=True)) | (Q(post__isnull=True) & Q(reply__isnull=False))


class Like(models.Model):
    """One person's like of a post or a reply (at most one each: unique constraints, not a check
    before insert, so two toggles at once cannot make two)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="forum_likes")
    post = models.ForeignKey(Post, null=True, blank=True, on_delete=models.CASCADE, related_name="likes")
    reply = models.ForeignKey(Reply, null=True, blank=True, on_delete=models.CASCADE, related_name="likes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("like")
        verbose_name_plural = _("likes")
        constraints = [
            models.CheckConstraint(condition=_one_target(), name="like_of_post_or_reply"),
            models.UniqueConstraint(
                fields=["user", "post"], condition=Q(post__isnull=False), name="like_once_per_post"
            ),
            models.UniqueConstraint(
                fields=["user", "reply"], condition=Q(reply__isnull=False), name="like_once_per_reply"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} likes {self.post_id or self.reply_id}"


class PostView(models.Model):
    """That a person opened a post (once per person: ``Post.view_count`` counts people)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="views")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "post"], name="view_once_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id} viewed {self.post_id}"


class Report(models.Model):
    """A reader's report of a post or reply to the moderators, and what became of it."""

    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="forum_reports")
    post = models.ForeignKey(Post, null=True, blank=True, on_delete=models.CASCADE, related_name="reports")
    reply = models.ForeignKey(Reply, null=True, blank=True, on_delete=models.CASCADE, related_name="reports")
    reason = models.CharField(_("reason"), max_length=500)
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.OPEN, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        constraints = [
            models.CheckConstraint(condition=_one_target(), name="report_of_post_or_reply"),
            # One open report per person and item: reporting again while it waits changes nothing.
            models.UniqueConstraint(
                fields=["reporter", "post"],
                condition=Q(status=ReportStatus.OPEN, post__isnull=False),
                name="report_open_once_per_post",
            ),
            models.UniqueConstraint(
                fields=["reporter", "reply"],
                condition=Q(status=ReportStatus.OPEN, reply__isnull=False),
                name="report_open_once_per_reply",
            ),
        ]

    def __str__(self) -> str:
        return f"report {self.pk} ({self.status})"


class Image(models.Model):
    """An image uploaded for a post or reply (``discussion/uploads.py``): where it is, who sent it."""

    uploader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="forum_images")
    path = models.CharField(max_length=200, unique=True)
    size = models.PositiveIntegerField()
    content_type = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("image")
        verbose_name_plural = _("images")

    def __str__(self) -> str:
        return self.path

    @property
    def url(self) -> str:
        return settings.MEDIA_URL + self.path
