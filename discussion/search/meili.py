"""Meilisearch through its official client (``meilisearch`` on PyPI), when ``MEILISEARCH_URL`` is set.

One index (``MEILISEARCH_INDEX``, default ``rota_forum_posts``), one document per visible post
(``documents.meili_document``): hidden posts stay in it, filtered per person; deleted posts are
removed. Writes enqueue ``discussion.tasks.search_index_post`` after commit, which sends that one
document (or its deletion): never a full rebuild per write. ``manage.py forum_reindex`` applies the
settings and sends every post in batches.

Highlights: Meilisearch wraps hits in the tags we ask for; we ask for private-use sentinels,
escape the whole text, then turn the sentinels into ``<mark>``, so nothing from a post is ever
HTML. Meilisearch segments Chinese itself (charabia), so CJK needs nothing from us.
"""

from __future__ import annotations

from typing import Any

import meilisearch
from django.conf import settings
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from discussion import permissions
from discussion.models import Post, Reply
from discussion.search.base import SearchHit, SearchPage, SearchRequest, SearchSort
from discussion.search.documents import meili_document

PRE, POST = "\ue000", "\ue001"
BATCH = 1000
SETTINGS: dict[str, Any] = {
    "searchableAttributes": ["title", "tags", "body", "replies"],
    "filterableAttributes": ["tags", "category", "author_id", "hidden"],
    "sortableAttributes": ["created_at", "last_activity_at"],
    "displayedAttributes": ["id", "title", "body", "replies"],
}
SORTS = {
    SearchSort.RELEVANCE: None,
    SearchSort.NEWEST: ["created_at:desc"],
    SearchSort.ACTIVE: ["last_activity_at:desc"],
}


def _quote(value: str) -> str:
    """A string literal for a Meilisearch filter expression."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _marked(text: str) -> SafeString:
    return mark_safe(escape(text).replace(PRE, "<mark>").replace(POST, "</mark>"))  # noqa: S308 - escaped first


class MeiliBackend:
    name = "meilisearch"

    def __init__(self, client: meilisearch.Client, index_uid: str) -> None:
        self.client = client
        self.index_uid = index_uid

    @classmethod
    def from_settings(cls) -> MeiliBackend:
        client = meilisearch.Client(settings.MEILISEARCH_URL, settings.MEILISEARCH_API_KEY or None, timeout=10)
        return cls(client, settings.MEILISEARCH_INDEX)

    @property
    def index(self) -> Any:
        return self.client.index(self.index_uid)

    def filters(self, request: SearchRequest) -> list[Any]:
        """Meilisearch filter: a list is AND, a nested list is OR."""
        out: list[Any] = []
        if not permissions.is_moderator(request.user):
            out.append(["hidden = false", f"author_id = {int(request.user.pk)}"])
        if request.category:
            out.append(f"category = {_quote(request.category)}")
        if request.tag:
            out.append(f"tags = {_quote(request.tag.lower())}")
        return out

    def search_params(self, request: SearchRequest) -> dict[str, Any]:
        params: dict[str, Any] = {
            "filter": self.filters(request),
            "page": request.page,
            "hitsPerPage": request.page_size,
            "attributesToRetrieve": ["id"],
            "attributesToHighlight": ["title"],
            "attributesToCrop": ["body", "replies"],
            "cropLength": 30,
            "highlightPreTag": PRE,
            "highlightPostTag": POST,
        }
        sort = SORTS.get(request.sort)
        if sort:
            params["sort"] = sort
        return params

    def search(self, request: SearchRequest) -> SearchPage:
        page = SearchPage(page=request.page, page_size=request.page_size)
        if not request.text.strip():
            return page
        result = self.index.search(request.text[:200], self.search_params(request))
        page.total = int(result.get("totalHits", 0))
        for hit in result.get("hits", []):
            formatted = hit.get("_formatted", {})
            replies = [r for r in formatted.get("replies", []) if PRE in r]
            body = formatted.get("body", "")
            text = body if PRE in body or not replies else replies[0]
            page.hits.append(
                SearchHit(post_id=int(hit["id"]), title=_marked(formatted.get("title", "")), snippet=_marked(text))
            )
        return page

    def _documents(self, posts: list[Post]) -> list[dict[str, Any]]:
        ids = [p.pk for p in posts]
        replies: dict[int, list[str]] = {pk: [] for pk in ids}
        rows = Reply.objects.filter(post_id__in=ids, deleted_at__isnull=True).order_by("post_id", "floor")
        for post_id, body in rows.values_list("post_id", "body"):
            replies[post_id].append(body)
        return [meili_document(p, replies[p.pk], [t.name for t in p.tags.all()]) for p in posts]

    def index_posts(self, post_ids: list[int]) -> None:
        posts = list(Post.objects.filter(pk__in=post_ids, deleted_at__isnull=True).prefetch_related("tags"))
        if posts:
            self.index.add_documents(self._documents(posts), primary_key="id")
        for gone in sorted(set(post_ids) - {p.pk for p in posts}):
            self.index.delete_document(gone)

    def apply_settings(self) -> None:
        self.index.update_settings(SETTINGS)

    def rebuild(self) -> int:
        self.apply_settings()
        self.index.delete_all_documents()
        count = 0
        posts = Post.objects.filter(deleted_at__isnull=True).prefetch_related("tags").order_by("pk")
        batch: list[Post] = []
        for post in posts.iterator(chunk_size=BATCH):
            batch.append(post)
            if len(batch) == BATCH:
                self.index.add_documents(self._documents(batch), primary_key="id")
                count += len(batch)
                batch = []
        if batch:
            self.index.add_documents(self._documents(batch), primary_key="id")
            count += len(batch)
        return count
