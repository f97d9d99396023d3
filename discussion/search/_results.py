"""Turning matched post ids into hits with highlighted titles and snippets (SQL backends)."""

from __future__ import annotations

from collections import defaultdict

from discussion.models import Post, Reply
from discussion.search.base import SearchHit
from discussion.search.documents import post_text
from discussion.search.text import QueryTerm, highlight, snippet


def hits_for(post_ids: list[int], terms: list[QueryTerm]) -> list[SearchHit]:
    """Hits in the order of ``post_ids`` (two queries: the posts, then their live replies)."""
    posts = {p.pk: p for p in Post.objects.filter(pk__in=post_ids).only("id", "title", "body")}
    replies: dict[int, list[str]] = defaultdict(list)
    rows = Reply.objects.filter(post_id__in=post_ids, deleted_at__isnull=True).order_by("floor")
    for post_id, body in rows.values_list("post_id", "body"):
        replies[post_id].append(body)
    hits = []
    for pk in post_ids:
        post = posts.get(pk)
        if post is not None:
            hits.append(hit(pk, post.title, post_text(post, replies[pk]), terms))
    return hits


def hit(post_id: int, title: str, text: str, terms: list[QueryTerm]) -> SearchHit:
    """One hit: the title highlighted, and the snippet of ``text`` (body and replies) with the most hits."""
    return SearchHit(post_id=post_id, title=highlight(title, terms), snippet=snippet(text, terms))
