"""Fixtures of the admin pages: one person per admin group, and a signed-in client for each."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts import services as account_services
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _plain_static_storage(plain_static_storage):
    """Pages link static files (see ``plain_static_storage``)."""


@pytest.fixture
def admins(db: None, browser_for) -> dict[str, Any]:
    """``{"root": client, "quota_editor": client, …, "nobody": client}`` and the users under ``users``."""
    account_services.ensure_admin_groups()
    people = {
        "root": UserFactory(username="m-root", groups=["root"]),
        "cluster_manager": UserFactory(username="m-cluster", groups=["cluster_manager"]),
        "ops": UserFactory(username="m-ops", groups=["ops"]),
        "quota_editor": UserFactory(username="m-quota", groups=["quota_editor"]),
        "nobody": UserFactory(username="m-nobody"),
    }
    clients: dict[str, Any] = {name: browser_for(person) for name, person in people.items()}
    clients["anonymous"] = browser_for(None)
    clients["users"] = people
    return clients
