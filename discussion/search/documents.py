"""What the index holds for a post: its title, body and live replies, as text."""

from __future__ import annotations

from typing import Any

from discussion.models import Post, Reply, SearchWord
from discussion.search.text import index_text, vocabulary


def post_text(post: Post, replies: list[str]) -> str:
    return "\n".join([post.body, *replies])


def refresh_database_document(post_id: int) -> None:
    """Recompute the search columns of one post (the SQL backends read these) and add its words to
    the vocabulary of the typo tolerance (one insert; words already known are left alone)."""
    post = Post.objects.filter(pk=post_id).only("title", "body").first()
    if post is None:
        return
    replies = list(
        Reply.objects.filter(post_id=post_id, deleted_at__isnull=True).order_by("floor").values_list("body", flat=True)
    )
    search_title, search_document = index_text(post.title), index_text(post_text(post, replies))
    Post.objects.filter(pk=post_id).update(search_title=search_title, search_document=search_document)
    words = vocabulary(f"{search_title} {search_document}")
    SearchWord.objects.bulk_create([SearchWord(word=w) for w in sorted(words)], ignore_conflicts=True)


def meili_document(post: Post, replies: list[str], tags: list[str]) -> dict[str, Any]:
    """The Meilisearch document of a post (see ``meili.SETTINGS`` for how each field is used)."""
    return {
        "id": post.pk,
        "title": post.title,
        "body": post.body,
        "replies": replies,
        "tags": tags,
        "category": post.category,
        "author_id": post.author_id,
        "hidden": post.hidden,
        "pinned": post.pinned,
        "created_at": int(post.created_at.timestamp()),
        "last_activity_at": int(post.last_activity_at.timestamp()),
    }
