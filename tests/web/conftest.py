"""Page tests: Django's test client signed in with the session, as a browser would be."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.fixture(autouse=True)
def _plain_static_storage(plain_static_storage):
    """Every page here links static files (see ``plain_static_storage``)."""


@pytest.fixture
def page(browser_for, user) -> Client:
    return browser_for(user)


HTMX = {"HTTP_HX_REQUEST": "true"}
