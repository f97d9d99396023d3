"""Forum fixtures: three people (an author, another user, a moderator), signed-in page clients, and
a helper that writes posts through the services as a person would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts import services as account_services
from apps.accounts.models import User
from discussion import services
from discussion.models import Post, Reply
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _plain_static_storage(plain_static_storage):
    """Pages link static files (see ``plain_static_storage``)."""


@pytest.fixture
def author(db: None) -> User:
    return UserFactory(username="alice", nickname="Alice L.")


@pytest.fixture
def reader(db: None) -> User:
    return UserFactory(username="bob", nickname="Bobby")


@pytest.fixture
def moderator(db: None) -> User:
    account_services.ensure_admin_groups()
    return UserFactory(username="mod", nickname="Moderator M.", groups=["forum_admin"])


@pytest.fixture
def make_post(author: User) -> Callable[..., Post]:
    def make(actor: User | None = None, **fields: Any) -> Post:
        values: dict[str, Any] = {
            "title": "NCCL timeout on 4 nodes",
            "body": "My job **hangs** at init.",
            "category": "jobs",
            "tags": "nccl pytorch",
        }
        values.update(fields)
        return services.post_create(actor=actor or author, **values)

    return make


@pytest.fixture
def make_reply(reader: User) -> Callable[..., Reply]:
    def make(post: Post, actor: User | None = None, body: str = "Try NCCL_DEBUG=INFO.", **fields: Any) -> Reply:
        return services.reply_create(actor=actor or reader, post=post, body=body, **fields)

    return make
