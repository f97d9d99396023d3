"""Exact query counts of the API's lists (NetBox style): each list's count is pinned, and it is the
same with a few rows as with many, so a query per row (an N+1) changes the number and fails here.

Change a number only with a reason in the commit. The job lists and pages are pinned with 1,000 jobs
in tests/web/test_page_budget.py."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts import services as account_services
from apps.quotas import services as quota_services
from tests.factories import GroupFactory, NodeFactory, NodeGroupFactory, UserFactory

# The token (1 query), the caller's groups on the admin lists (1), then the list as apps/core/paging.py
# reads it: a count, the page's ids, its rows; plus one for what the rows show from elsewhere (the
# users' groups; the ranks holding the nodes).
BUDGET = {
    "/api/v1/nodes/": 5,
    "/api/v1/admin/users/": 6,
    "/api/v1/admin/quotas/": 5,
    "/api/v1/admin/audit/": 5,
    "/api/v1/tokens/": 4,
}

_serial = itertools.count()


def grow(admin, rows: int) -> None:
    """``rows`` more of everything the lists show: nodes in two groups, users in a team with a
    token each, group quotas (each audited), and the admin's own tokens."""
    groups = [NodeGroupFactory(name="training"), NodeGroupFactory(name="inference")]
    for _ in range(rows):
        i = next(_serial)
        NodeFactory(name=f"q-node-{i}", group=groups[i % 2])
        team = GroupFactory(name=f"q-team-{i}")
        member = UserFactory(username=f"q-user-{i}", groups=[team.name])
        account_services.token_create(actor=member, name=f"t{i}")
        quota_services.quota_set(actor=admin, group=team, kind="node", node_group=groups[i % 2], priority=30, value=2)
        account_services.token_create(actor=admin, name=f"admin-{i}")


def counts(client) -> dict[str, int]:
    found = {}
    for url in BUDGET:
        client.get(url)  # warm: the token's last use, caches
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, (url, response.content[:300])
        found[url] = len(queries.captured_queries)
    return found


@pytest.mark.django_db
def test_the_lists_cost_the_same_exact_queries_with_3_rows_and_with_30(make_client, admin_user):
    client = make_client(admin_user)
    grow(admin_user, 3)
    few = counts(client)
    grow(admin_user, 27)
    assert counts(client) == few == BUDGET
