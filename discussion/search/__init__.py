"""Forum search: one interface (``base.SearchBackend``), three backends.

- ``postgres``: PostgreSQL full-text search over a stored ``tsvector`` (titles weighted above
  bodies and replies), CJK as bigrams (``text.py``), ranked with ``ts_rank_cd``; a trigram
  similarity fallback on titles when the words find nothing (typos).
- ``sqlite``: the embedded profile's fallback, the same tokens matched with ``LIKE``.
- ``meili``: Meilisearch through its official client when ``MEILISEARCH_URL`` is set; documents
  are pushed per post by django-q2 tasks enqueued after commit (``discussion.tasks``).

Writes call ``post_changed(post_id)`` inside their transaction: it refreshes the database's own
search columns at once (they are what the SQL backends read) and, with Meilisearch, enqueues the
one post's update after commit. ``manage.py forum_reindex`` rebuilds everything.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from apps.core.tasks import enqueue_on_commit
from discussion.search.base import SearchBackend, SearchHit, SearchPage, SearchRequest, SearchSort
from discussion.search.documents import refresh_database_document
from discussion.search.meili import MeiliBackend
from discussion.search.postgres import PostgresBackend
from discussion.search.sqlite import SqliteBackend

__all__ = ["SearchBackend", "SearchHit", "SearchPage", "SearchRequest", "SearchSort", "get_backend", "post_changed"]


def get_backend() -> SearchBackend:
    """Meilisearch when configured, else the database's own."""
    if settings.MEILISEARCH_URL:
        return MeiliBackend.from_settings()
    if connection.vendor == "postgresql":
        return PostgresBackend()
    return SqliteBackend()


def post_changed(post_id: int) -> None:
    """Call inside the transaction of any write that changes what a post's search entry holds."""
    refresh_database_document(post_id)
    if settings.MEILISEARCH_URL:
        enqueue_on_commit("discussion.tasks.search_index_post", post_id)
