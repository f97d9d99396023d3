"""The search interface every backend implements, and the shapes it answers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from django.utils.safestring import SafeString

from apps.accounts.models import User


class SearchSort:
    RELEVANCE = "relevance"
    NEWEST = "newest"
    ACTIVE = "active"
    ALL = ("relevance", "newest", "active")


@dataclass(frozen=True)
class SearchRequest:
    """What a person asked for. ``user`` decides what they may find (hidden posts: their own only,
    unless a moderator)."""

    text: str
    user: User
    tag: str = ""
    category: str = ""
    sort: str = SearchSort.RELEVANCE
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class SearchHit:
    post_id: int
    title: SafeString  # escaped, hits in <mark>
    snippet: SafeString  # escaped, hits in <mark>


@dataclass
class SearchPage:
    hits: list[SearchHit] = field(default_factory=list)
    total: int = 0
    capped: bool = False  # more matches than the backend counts (the total is a lower bound)
    corrected: str = ""  # nothing matched the words as typed; these close words did (typos)
    page: int = 1
    page_size: int = 20

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


class SearchBackend(Protocol):
    name: str

    def search(self, request: SearchRequest) -> SearchPage: ...

    def index_posts(self, post_ids: list[int]) -> None:
        """Bring these posts' entries up to date (add, change, or remove when gone or deleted)."""

    def rebuild(self) -> int:
        """Index every post from scratch (``manage.py forum_reindex``); returns how many."""
        ...
