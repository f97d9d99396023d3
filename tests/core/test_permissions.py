"""Every API endpoint through the permission suite: anonymous, another user, admin."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import URLPattern, URLResolver, get_resolver

from apps.accounts import services as account_services
from apps.cluster import services as cluster_services
from apps.quotas import services as quota_services
from tests.factories import EnvironmentFactory, NodeFactory, NodeGroupFactory, UserFactory
from tests.permissions import Endpoint, call, db_state

ENDPOINTS = [
    Endpoint("me", "GET", lambda c: "/api/v1/me/"),
    Endpoint("tokens-list", "GET", lambda c: "/api/v1/tokens/"),
    Endpoint("tokens-create", "POST", lambda c: "/api/v1/tokens/", {"name": "perm"}, ok_status=201),
    Endpoint("token-detail", "GET", lambda c: f"/api/v1/tokens/{c['token'].pk}/", owner_scoped=True, skip_admin=True),
    Endpoint(
        "token-revoke",
        "DELETE",
        lambda c: f"/api/v1/tokens/{c['token'].pk}/",
        owner_scoped=True,
        ok_status=204,
        skip_admin=True,
    ),
    Endpoint("node-groups", "GET", lambda c: "/api/v1/node-groups/"),
    Endpoint("nodes", "GET", lambda c: "/api/v1/nodes/"),
    Endpoint("node-detail", "GET", lambda c: f"/api/v1/nodes/{c['node'].name}/"),
    Endpoint("environments", "GET", lambda c: "/api/v1/environments/"),
    Endpoint("my-quota", "GET", lambda c: "/api/v1/quota/"),
    Endpoint("admin-users", "GET", lambda c: "/api/v1/admin/users/", admin_only=True),
    Endpoint(
        "admin-users-create",
        "POST",
        lambda c: "/api/v1/admin/users/",
        {"username": "newbie"},
        admin_only=True,
        ok_status=201,
    ),
    Endpoint("admin-user-detail", "GET", lambda c: f"/api/v1/admin/users/{c['owner'].pk}/", admin_only=True),
    Endpoint(
        "admin-user-update",
        "PATCH",
        lambda c: f"/api/v1/admin/users/{c['owner'].pk}/",
        {"nickname": "N"},
        admin_only=True,
    ),
    Endpoint(
        "admin-user-token",
        "POST",
        lambda c: f"/api/v1/admin/users/{c['owner'].pk}/tokens/",
        {"name": "x"},
        admin_only=True,
        ok_status=201,
    ),
    Endpoint("admin-quotas", "GET", lambda c: "/api/v1/admin/quotas/", admin_only=True),
    Endpoint(
        "admin-quotas-create",
        "POST",
        lambda c: "/api/v1/admin/quotas/",
        {"group": "public", "kind": "node", "node_group": "training", "priority": "LOW", "value": 1},
        admin_only=True,
        ok_status=201,
    ),
    Endpoint("admin-quota-detail", "GET", lambda c: f"/api/v1/admin/quotas/{c['quota'].pk}/", admin_only=True),
    Endpoint(
        "admin-quota-delete",
        "DELETE",
        lambda c: f"/api/v1/admin/quotas/{c['quota'].pk}/",
        admin_only=True,
        ok_status=204,
    ),
    Endpoint(
        "admin-nodes-create",
        "POST",
        lambda c: "/api/v1/admin/nodes/",
        {"name": "n-new", "group": "training"},
        admin_only=True,
        ok_status=201,
    ),
    Endpoint(
        "admin-node-disable",
        "POST",
        lambda c: f"/api/v1/admin/nodes/{c['node'].name}/disable/",
        {"reason": "bad GPU"},
        admin_only=True,
    ),
    Endpoint(
        "admin-node-enable", "POST", lambda c: f"/api/v1/admin/nodes/{c['node'].name}/enable/", {}, admin_only=True
    ),
    Endpoint("admin-audit", "GET", lambda c: "/api/v1/admin/audit/", admin_only=True),
]


@pytest.fixture
def ctx(db, make_client):
    account_services.ensure_admin_groups()
    owner = UserFactory(username="owner")
    intruder = UserFactory(username="intruder")
    admin = UserFactory(username="the-admin", groups=["root"])
    group = NodeGroupFactory(name="training")
    node = NodeFactory(name="gpu-1", group=group)
    EnvironmentFactory(name="default")
    public = Group.objects.get_or_create(name="public")[0]
    quota = quota_services.quota_set(actor=None, group=public, kind="node", node_group=group, priority=30, value=2)
    token = account_services.token_create(actor=owner, name="owned").token
    cluster_services.node_group_upsert(actor=None, name="training")
    return {
        "owner": owner,
        "intruder": intruder,
        "admin": admin,
        "node": node,
        "quota": quota,
        "token": token,
        "clients": {
            "anonymous": make_client(None),
            "owner": make_client(owner),
            "intruder": make_client(intruder),
            "admin": make_client(admin),
        },
    }


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
def test_anonymous_is_refused_and_nothing_changes(ctx, endpoint):
    before = db_state()
    response = call(ctx["clients"]["anonymous"], endpoint, ctx)
    assert response.status_code == 401, response.content
    assert response.json()["error"]["code"] == "not_authenticated"
    assert db_state() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if e.admin_only or e.owner_scoped],
    ids=[e.name for e in ENDPOINTS if e.admin_only or e.owner_scoped],
)
def test_other_user_is_refused_and_nothing_changes(ctx, endpoint):
    before = db_state()
    response = call(ctx["clients"]["intruder"], endpoint, ctx)
    assert response.status_code == (403 if endpoint.admin_only else 404), response.content
    assert response.json()["error"]["code"] == ("permission_denied" if endpoint.admin_only else "not_found")
    assert db_state() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if not e.admin_only], ids=[e.name for e in ENDPOINTS if not e.admin_only]
)
def test_owner_is_allowed(ctx, endpoint):
    response = call(ctx["clients"]["owner"], endpoint, ctx)
    assert response.status_code == endpoint.ok_status, response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if not e.skip_admin], ids=[e.name for e in ENDPOINTS if not e.skip_admin]
)
def test_admin_is_allowed(ctx, endpoint):
    response = call(ctx["clients"]["admin"], endpoint, ctx)
    assert response.status_code == (endpoint.admin_status or endpoint.ok_status), response.content


def _api_routes(resolver: URLResolver | None = None, prefix: str = "") -> set[str]:
    resolver = resolver or get_resolver()
    routes: set[str] = set()
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes |= _api_routes(pattern, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
            routes.add(route)
    return routes


def test_every_api_route_is_in_the_permission_suite():
    """A new endpoint must be in a suite's endpoint list (here or an app's, see tests/permission_registry.py)
    to be merged: the covered routes are those the lists' URLs resolve to."""
    from tests.permission_registry import covered_routes

    missing = sorted(_api_routes() - covered_routes())
    assert missing == [], f"add these endpoints to a permission suite: {missing}"
