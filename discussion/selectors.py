"""Reads of the forum: which posts a user may see, the list with its filters, a post's replies."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from apps.accounts.models import User
from apps.cluster.models import Node
from discussion import permissions
from discussion.choices import Category, PostOrder, ReportStatus
from discussion.models import Like, Post, Reply, Report, Revision, Tag


def posts_visible_to(*, user: User) -> QuerySet[Post]:
    """Posts ``user`` may open: not deleted, and not hidden unless they wrote it; moderators see all."""
    posts = Post.objects.all()
    if permissions.is_moderator(user):
        return posts
    return posts.filter(Q(hidden=False) | Q(author=user), deleted_at__isnull=True)


@dataclass(frozen=True)
class PostFilters:
    order: str = PostOrder.LATEST
    tag: str = ""
    category: str = ""
    author: str = ""


def post_list(*, user: User, filters: PostFilters) -> QuerySet[Post]:
    """The list page: pinned first, then by the chosen order, with authors and tags in two queries."""
    posts = posts_visible_to(user=user).select_related("author").prefetch_related("tags")
    if permissions.is_moderator(user):
        posts = posts.filter(deleted_at__isnull=True)
    if filters.tag:
        posts = posts.filter(tags__name=filters.tag.lower())
    if filters.category in Category.values:
        posts = posts.filter(category=filters.category)
    if filters.author:
        posts = posts.filter(author__username=filters.author)
    if filters.order == PostOrder.UNANSWERED:
        posts = posts.filter(reply_count=0)
    elif filters.order == PostOrder.MINE:
        posts = posts.filter(author=user) | posts.filter(replies__author=user, replies__deleted_at__isnull=True)
        posts = posts.distinct()
    if filters.order == PostOrder.HOT:
        return posts.order_by("-pinned", "-hotness", "-id")
    return posts.order_by("-pinned", "-last_activity_at", "-id")


def post_detail(*, user: User, pk: int) -> Post | None:
    """A post ``user`` may see, with its author and tags, or None."""
    return posts_visible_to(user=user).select_related("author", "chain").prefetch_related("tags").filter(pk=pk).first()


def post_replies(*, post: Post) -> QuerySet[Reply]:
    """Replies by floor (deleted ones included, shown as such), with what they quote."""
    return post.replies.select_related("author", "quote", "quote__author").order_by("floor")


def reply_of(*, user: User, pk: int) -> Reply | None:
    """A reply whose post ``user`` may see, or None."""
    reply = Reply.objects.select_related("post", "author").filter(pk=pk).first()
    if reply is None or not permissions.can_see_post(user, reply.post):
        return None
    return reply


def post_revisions(*, post: Post) -> QuerySet[Revision]:
    return post.revisions.select_related("edited_by").order_by("-edited_at", "-id")


def reply_revisions(*, reply: Reply) -> QuerySet[Revision]:
    return reply.revisions.select_related("edited_by").order_by("-edited_at", "-id")


def popular_tags(*, limit: int = 20) -> list[Tag]:
    return list(
        Tag.objects.annotate(n=Count("posts", filter=Q(posts__deleted_at__isnull=True, posts__hidden=False)))
        .filter(n__gt=0)
        .order_by("-n", "name")[:limit]
    )


def liked_by(*, user: User, post: Post, replies: list[Reply]) -> tuple[bool, set[int]]:
    """Whether ``user`` liked the post, and which of the replies (one query)."""
    rows = Like.objects.filter(user=user).filter(Q(post=post) | Q(reply__in=[r.pk for r in replies]))
    liked_post = False
    liked_replies: set[int] = set()
    for post_id, reply_id in rows.values_list("post_id", "reply_id"):
        if post_id is not None:
            liked_post = True
        else:
            liked_replies.add(reply_id)
    return liked_post, liked_replies


def report_queue(*, status: str = ReportStatus.OPEN) -> QuerySet[Report]:
    """Reports for the moderation queue, oldest first, with what they point at."""
    return Report.objects.filter(status=status).select_related(
        "reporter", "post", "post__author", "reply", "reply__author", "reply__post", "handled_by"
    )


def node_named(*, name: str) -> Node | None:
    """The node a post mentions by name (every signed-in user may see nodes, as in the API), or None."""
    return Node.objects.select_related("group").filter(name=name).first()
