"""The permission suite of every /monitor page and action.

Anonymous people are sent to sign in; people outside every admin group get 404 (the pages do not
exist for them); an admin of the wrong group gets 403 on an action; each refusal changes nothing
in the database (``db_state``). The right group is served. Every route of the app must be listed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.web.models import Notice
from monitor.access import Power
from tests.factories import UserFactory
from tests.permissions import db_state

ADMIN_GROUPS = ("root", "cluster_manager", "ops", "quota_editor")


@dataclass
class MonitorPage:
    name: str
    method: str
    url: Callable[[dict[str, Any]], str]
    power: Power = Power.VIEW
    data: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    ok_status: int = 200

    def call(self, client: Any, ctx: dict[str, Any]) -> Any:
        method = getattr(client, self.method.lower())
        if self.data is None:
            return method(self.url(ctx))
        return method(self.url(ctx), self.data(ctx))

    def allowed(self, group: str) -> bool:
        return group == "root" or group in {str(g) for g in self.power.groups}


PAGES = [
    MonitorPage("users", "GET", lambda c: "/monitor/users/"),
    MonitorPage("user-create-form", "GET", lambda c: "/monitor/users/new/", Power.USERS),
    MonitorPage(
        "user-create",
        "POST",
        lambda c: "/monitor/users/new/",
        Power.USERS,
        lambda c: {"username": "perm-new", "role": "internal", "issue_token": "on"},
    ),
    MonitorPage("user-detail", "GET", lambda c: f"/monitor/users/{c['target'].pk}/"),
    MonitorPage(
        "user-edit",
        "POST",
        lambda c: f"/monitor/users/{c['target'].pk}/edit/",
        Power.USERS,
        lambda c: {"nickname": "changed", "role": "internal"},
        ok_status=302,
    ),
    MonitorPage(
        "user-activation",
        "POST",
        lambda c: f"/monitor/users/{c['target'].pk}/activation/",
        Power.USERS,
        lambda c: {"active": "0", "jobs": "suspend"},
        ok_status=302,
    ),
]
PAGES += [
    MonitorPage("quotas", "GET", lambda c: "/monitor/quotas/?group=public"),
    MonitorPage(
        "quotas-save",
        "POST",
        lambda c: "/monitor/quotas/save/",
        Power.QUOTAS,
        lambda c: {"subject_type": "user", "subject": "perm-target", f"node:{c['node_group'].pk}:30": "5"},
        ok_status=302,
    ),
]
PAGES += [
    MonitorPage("nodes", "GET", lambda c: "/monitor/nodes/"),
    MonitorPage("node-detail", "GET", lambda c: f"/monitor/nodes/{c['node'].pk}/"),
    MonitorPage(
        "node-action",
        "POST",
        lambda c: f"/monitor/nodes/{c['node'].pk}/action/",
        Power.NODES,
        lambda c: {"action": "drain", "reason": "maintenance", "deadline": "60"},
        ok_status=302,
    ),
]
PAGES += [
    MonitorPage("jobs", "GET", lambda c: "/monitor/jobs/"),
    MonitorPage(
        "jobs-batch",
        "POST",
        lambda c: "/monitor/jobs/batch/",
        Power.JOBS,
        lambda c: {"action": "stop", "ids": [c["chain"].pk]},
        ok_status=302,
    ),
]
PAGES += [
    MonitorPage("container-policies", "GET", lambda c: "/monitor/containers/"),
    MonitorPage(
        "container-policy-save",
        "POST",
        lambda c: f"/monitor/containers/{c['node_group'].pk}/",
        Power.NODES,
        lambda c: {
            f"g{c['node_group'].pk}-{k}": v
            for k, v in {
                "kind": "dedicated",
                "idle_minutes": "30",
                "grace_minutes": "10",
                "gpu_util_threshold": "5",
            }.items()
        },
        ok_status=302,
    ),
    MonitorPage("scheduler", "GET", lambda c: "/monitor/scheduler/"),
    MonitorPage("scheduler-history", "GET", lambda c: "/monitor/scheduler/history/?range=7d"),
    MonitorPage("usage", "GET", lambda c: "/monitor/usage/"),
    MonitorPage("usage-csv", "GET", lambda c: "/monitor/usage/?format=csv"),
    MonitorPage("notices", "GET", lambda c: "/monitor/notices/"),
    MonitorPage("notice-create-form", "GET", lambda c: "/monitor/notices/new/", Power.NOTICES),
    MonitorPage(
        "notice-create",
        "POST",
        lambda c: "/monitor/notices/new/",
        Power.NOTICES,
        lambda c: {"title": "t", "severity": "info", "audience": "all", "starts_at": "2026-01-01T00:00"},
        ok_status=302,
    ),
    MonitorPage("notice-edit-form", "GET", lambda c: f"/monitor/notices/{c['notice'].pk}/", Power.NOTICES),
    MonitorPage(
        "notice-edit",
        "POST",
        lambda c: f"/monitor/notices/{c['notice'].pk}/",
        Power.NOTICES,
        lambda c: {"title": "t2", "severity": "info", "audience": "all", "starts_at": "2026-01-01T00:00"},
        ok_status=302,
    ),
    MonitorPage(
        "notice-expire", "POST", lambda c: f"/monitor/notices/{c['notice'].pk}/expire/", Power.NOTICES, ok_status=302
    ),
    MonitorPage(
        "notice-delete", "POST", lambda c: f"/monitor/notices/{c['notice'].pk}/delete/", Power.NOTICES, ok_status=302
    ),
    MonitorPage("audit", "GET", lambda c: "/monitor/audit/"),
    MonitorPage("audit-csv", "GET", lambda c: "/monitor/audit/?format=csv"),
]
IDS = [p.name for p in PAGES]
WRITES = [p for p in PAGES if p.method == "POST"]


@pytest.fixture
def ctx(admins) -> dict[str, Any]:
    from django.contrib.auth.models import Group

    from tests.factories import NodeFactory, NodeGroupFactory

    Group.objects.get_or_create(name="public")
    return {
        **admins,
        "target": UserFactory(username="perm-target", nickname="before"),
        "node_group": NodeGroupFactory(name="training"),
        "node": NodeFactory(name="perm-node", group=NodeGroupFactory(name="training")),
        "chain": _waiting_chain(),
        "notice": Notice.objects.create(title="perm notice", starts_at=timezone.now() - timedelta(hours=1)),
    }


def _waiting_chain():
    """A job that waits (no quota, so no scheduling pass needed), made without the submit service."""
    from apps.experiments.models import Attempt, Chain
    from tests.factories import NodeGroupFactory

    owner = UserFactory(username="perm-owner")
    chain = Chain.objects.create(
        owner=owner,
        name="perm-job",
        workspace="/tmp",
        entrypoint="x.py",
        node_group=NodeGroupFactory(name="training"),
        node_count=1,
        environment_name="default",
    )
    attempt = Attempt.objects.create(chain=chain, index=0, priority=10)
    Chain.objects.filter(pk=chain.pk).update(latest_attempt=attempt)
    return chain


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_anonymous_is_sent_to_sign_in_and_nothing_changes(ctx, page):
    before = db_state()
    response = page.call(ctx["anonymous"], ctx)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/monitor/")
    assert db_state() == before


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_people_outside_the_admin_groups_get_404_and_nothing_changes(ctx, page):
    before = db_state()
    response = page.call(ctx["nobody"], ctx)
    assert response.status_code == 404
    assert db_state() == before


@pytest.mark.parametrize("group", ADMIN_GROUPS)
@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_each_admin_group_is_served_or_refused_with_403(ctx, page, group):
    before = db_state()
    response = page.call(ctx[group], ctx)
    if page.allowed(group):
        assert response.status_code == page.ok_status, response.content[:400]
    else:
        assert response.status_code == 403
        assert db_state() == before


def test_every_monitor_route_is_in_the_suite():
    from types import SimpleNamespace

    from django.urls import get_resolver, resolve

    monitor = next(p for p in get_resolver().url_patterns if getattr(p, "app_name", None) == "monitor")
    routes = {str(p.pattern) for p in monitor.url_patterns}
    fake = {
        "target": SimpleNamespace(pk=1),
        "node": SimpleNamespace(pk=1, name="n1"),
        "chain": SimpleNamespace(pk=1),
        "node_group": SimpleNamespace(pk=1),
        "notice": SimpleNamespace(pk=1),
    }
    covered = {resolve(page.url(fake).split("?")[0]).route.removeprefix("monitor/") for page in PAGES}
    covered |= {""}  # /monitor/ itself: tests/web/test_views.py follows it for admins and others
    assert routes - covered == set()
