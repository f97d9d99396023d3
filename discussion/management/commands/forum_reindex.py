"""Rebuild the forum's search index: the database's search columns always, and Meilisearch
(settings and every document) when ``MEILISEARCH_URL`` is set."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from discussion.models import Post
from discussion.search import get_backend
from discussion.search.documents import refresh_database_document


class Command(BaseCommand):
    help = "Rebuild the forum search index (database columns, and Meilisearch when configured)."

    def handle(self, *args: Any, **options: Any) -> None:
        ids = list(Post.objects.values_list("pk", flat=True))
        for post_id in ids:
            refresh_database_document(post_id)
        self.stdout.write(f"database: {len(ids)} posts")
        backend = get_backend()
        if backend.name == "meilisearch":
            sent = backend.rebuild()
            self.stdout.write(f"meilisearch: {sent} documents sent")
