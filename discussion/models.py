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

from discussion.choices import Category


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
