"""Which API routes have a permission suite, derived from the suites' endpoint lists.

Each suite declares its endpoints once (``tests.permissions.Endpoint``) and runs them as anonymous,
another user (or another user's attempt) and the owner or an admin. The routes they reach are found
by resolving each endpoint's URL, as the portal's suite does for its pages
(``tests/web/test_permissions.py``), so a route is covered exactly when a suite calls it.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.urls import resolve

from tests.permissions import Endpoint

# Routes with no permission to check, and the test that covers them instead.
PUBLIC: dict[str, str] = {
    "api/v1/auth/token/": "tests/accounts/test_tokens.py (exchanges a password for a token)",
}


def endpoint_lists() -> list[list[Endpoint]]:
    from tests.containers.test_api import ENDPOINTS as CONTAINER_ENDPOINTS
    from tests.core.test_permissions import ENDPOINTS as CORE_ENDPOINTS
    from tests.experiments.test_api import EXPERIMENT_ENDPOINTS, JOB_ENDPOINTS

    return [CORE_ENDPOINTS, EXPERIMENT_ENDPOINTS, JOB_ENDPOINTS, CONTAINER_ENDPOINTS]


class _AnyObject(dict[str, Any]):
    """Stands in for a suite's context: every object has pk 1 and a name, enough to build its URL."""

    def __missing__(self, key: str) -> SimpleNamespace:
        return SimpleNamespace(pk=1, name="node-1")


def covered_routes() -> set[str]:
    ctx = _AnyObject()
    return {resolve(e.url(ctx).split("?")[0]).route for endpoints in endpoint_lists() for e in endpoints} | set(PUBLIC)
