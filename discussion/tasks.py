"""Background work of the forum (django-q2; enqueued by name after commit, see apps/core/tasks.py)."""

from __future__ import annotations

from discussion.search import get_backend


def search_index_post(post_id: int) -> None:
    """Send one post's current state to the search backend (idempotent: it reads the row now)."""
    get_backend().index_posts([post_id])
