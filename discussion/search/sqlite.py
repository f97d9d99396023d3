"""The embedded profile's search: the same tokens as PostgreSQL (``text.index_text``), matched with
``LIKE`` on the stored columns. Every term must match; title matches rank first. Fine for the
few thousand posts of one team; PostgreSQL or Meilisearch for more."""

from __future__ import annotations

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from discussion.models import Post
from discussion.search._results import hits_for
from discussion.search.base import SearchPage, SearchRequest, SearchSort
from discussion.search.documents import refresh_database_document
from discussion.search.text import query_terms
from discussion.selectors import posts_visible_to


class SqliteBackend:
    name = "sqlite"

    def search(self, request: SearchRequest) -> SearchPage:
        terms = query_terms(request.text)
        page = SearchPage(page=request.page, page_size=request.page_size)
        if not terms:
            return page
        posts: QuerySet[Post] = posts_visible_to(user=request.user).filter(deleted_at__isnull=True)
        in_title = Q()
        for term in terms:
            needle = " ".join(term.grams())
            posts = posts.filter(Q(search_title__contains=needle) | Q(search_document__contains=needle))
            in_title &= Q(search_title__contains=needle)
        if request.category:
            posts = posts.filter(category=request.category)
        if request.tag:
            posts = posts.filter(tags__name=request.tag.lower())
        if request.sort == SearchSort.NEWEST:
            posts = posts.order_by("-created_at", "-id")
        elif request.sort == SearchSort.ACTIVE:
            posts = posts.order_by("-last_activity_at", "-id")
        else:
            rank = Case(When(in_title, then=Value(1)), default=Value(0), output_field=IntegerField())
            posts = posts.annotate(rank=rank).order_by("-rank", "-last_activity_at", "-id")
        page.total = posts.count()
        offset = (request.page - 1) * request.page_size
        ids = list(posts.values_list("pk", flat=True)[offset : offset + request.page_size])
        page.hits = hits_for(ids, terms)
        return page

    def index_posts(self, post_ids: list[int]) -> None:
        for post_id in post_ids:
            refresh_database_document(post_id)

    def rebuild(self) -> int:
        ids = list(Post.objects.values_list("pk", flat=True))
        self.index_posts(ids)
        return len(ids)
