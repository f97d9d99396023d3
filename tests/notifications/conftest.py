"""Notification tests reuse the forum's fixtures: the forum is what sends notifications."""

from tests.discussion.conftest import (  # noqa: F401 - fixtures, registered by import
    _plain_static_storage,
    author,
    make_post,
    make_reply,
    moderator,
    reader,
)
