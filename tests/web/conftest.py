"""Page tests: Django's test client signed in with the session, as a browser would be."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from apps.accounts.models import User


@pytest.fixture(autouse=True)
def _plain_static_storage(plain_static_storage):
    """Every page here links static files (see ``plain_static_storage``)."""


@pytest.fixture
def browser_for(db: None) -> Callable[[User | None], Client]:
    """A test client signed in as ``user`` (anonymous for None), in English unless told."""

    def make(user: User | None, language: str = "en") -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        client.cookies["django_language"] = language
        return client

    return make


@pytest.fixture
def page(browser_for, user) -> Client:
    return browser_for(user)


HTMX = {"HTTP_HX_REQUEST": "true"}
