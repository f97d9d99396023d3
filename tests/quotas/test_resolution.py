"""Quota resolution table: user row over group rows, max across groups, min for limits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.core.errors import ApplicationError, PermissionDenied
from apps.core.models import AuditEntry
from apps.core.priorities import Priority
from apps.quotas import selectors, services
from apps.quotas.models import Quota
from tests.factories import EnvironmentFactory, NodeGroupFactory, UserFactory

HIGH = int(Priority.HIGH)
NORMAL = int(Priority.NORMAL)


def g(name: str) -> Group:
    return Group.objects.get_or_create(name=name)[0]


def node(subject, value, *, kind="node", priority=HIGH, group_name="training", expires_at=None):
    user = subject if not isinstance(subject, str) else None
    group = g(subject) if isinstance(subject, str) else None
    return services.quota_set(
        actor=None,
        user=user,
        group=group,
        kind=kind,
        node_group=NodeGroupFactory(name=group_name),
        priority=priority,
        value=value,
        expires_at=expires_at,
    )


# Each case: rows as (subject, kind, value) where subject "user" is the user under test,
# and the expected effective HIGH quota in "training".
CASES = [
    ("no rows", [], 0),
    ("public only", [("public", "node", 2)], 2),
    ("max across groups", [("public", "node", 2), ("vision", "node", 5)], 5),
    ("role group applies", [("public", "node", 2), ("internal", "node", 3)], 3),
    ("other role ignored", [("public", "node", 2), ("external", "node", 9)], 2),
    ("group not mine ignored", [("public", "node", 2), ("nlp", "node", 9)], 2),
    ("user row overrides higher group row", [("vision", "node", 5), ("user", "node", 1)], 1),
    ("user row overrides lower group row", [("public", "node", 2), ("user", "node", 7)], 7),
    ("limit caps quota", [("vision", "node", 5), ("public", "node_limit", 3)], 3),
    ("min across group limits", [("vision", "node", 8), ("public", "node_limit", 6), ("vision", "node_limit", 4)], 4),
    (
        "user limit overrides group limits",
        [("vision", "node", 8), ("public", "node_limit", 2), ("user", "node_limit", 6)],
        6,
    ),
    ("limit above quota changes nothing", [("vision", "node", 3), ("public", "node_limit", 10)], 3),
    ("zero user row removes group quota", [("vision", "node", 5), ("user", "node", 0)], 0),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("label", "rows", "expected"), CASES, ids=[c[0] for c in CASES])
def test_node_quota_resolution(label, rows, expected):
    user = UserFactory(username="res", team=g("vision"))
    for subject, kind, value in rows:
        node(user if subject == "user" else subject, value, kind=kind)
    resolved = selectors.quota_resolve(user=user)
    assert resolved.nodes("training", HIGH) == expected
    assert resolved.nodes("training", NORMAL) == 0


@pytest.mark.django_db
def test_expired_rows_are_ignored():
    user = UserFactory(username="exp")
    node("public", 2)
    node(user, 9, expires_at=timezone.now() + timedelta(hours=1))
    assert selectors.quota_resolve(user=user).nodes("training", HIGH) == 9
    Quota.objects.filter(user=user).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert selectors.quota_resolve(user=user).nodes("training", HIGH) == 2


@pytest.mark.django_db
def test_ceiling_is_the_largest_level():
    user = UserFactory(username="ceil")
    node("public", 2, priority=HIGH)
    node("public", 6, priority=NORMAL)
    node("public", 50, group_name="other")
    assert selectors.quota_resolve(user=user).ceiling("training") == 6


@pytest.mark.django_db
def test_environment_permission_and_default_order():
    user = UserFactory(username="envs")
    base = EnvironmentFactory(name="base")
    torch = EnvironmentFactory(name="torch")
    EnvironmentFactory(name="secret")
    services.quota_set(actor=None, group=g("public"), kind="environment", environment=base, value=1)
    services.quota_set(actor=None, group=g("internal"), kind="environment", environment=torch, value=5)
    resolved = selectors.quota_resolve(user=user)
    assert resolved.environments == ("torch", "base")
    assert resolved.default_environment == "torch"
    assert not resolved.may_use_environment("secret")
    assert [e.name for e in selectors.environments_for(user=user)] == ["torch", "base"]


@pytest.mark.django_db
def test_jupyter_quota_max_across_groups():
    user = UserFactory(username="jup", team=g("vision"))
    ng = NodeGroupFactory(name="jupyter_cpu")
    services.quota_set(actor=None, group=g("public"), kind="jupyter_containers", node_group=ng, value=1)
    services.quota_set(actor=None, group=g("vision"), kind="jupyter_containers", node_group=ng, value=3)
    services.quota_set(actor=None, group=g("public"), kind="jupyter_cpu", node_group=ng, value=8)
    jq = selectors.quota_resolve(user=user).jupyter["jupyter_cpu"]
    assert (jq.containers, jq.cpu, jq.memory_gib) == (3, 8, 0)


@pytest.mark.django_db
def test_resolve_many_matches_single_and_uses_constant_queries(django_assert_max_num_queries):
    node("public", 2)
    node("vision", 4)
    users = [UserFactory(username=f"many{i}", team=g("vision") if i % 2 else None) for i in range(12)]
    node(users[0], 1)
    with django_assert_max_num_queries(3):
        many = selectors.quota_resolve_many(user_ids=[u.pk for u in users])
    for u in users:
        assert many[u.pk].node == selectors.quota_resolve(user=u).node
    assert many[users[0].pk].nodes("training", HIGH) == 1
    assert many[users[1].pk].nodes("training", HIGH) == 4
    assert many[users[2].pk].nodes("training", HIGH) == 2


@pytest.mark.django_db
def test_quota_set_is_audited_and_idempotent(admin_user):
    ng = NodeGroupFactory(name="training")
    services.quota_set(actor=admin_user, group=g("public"), kind="node", node_group=ng, priority=HIGH, value=3)
    services.quota_set(actor=admin_user, group=g("public"), kind="node", node_group=ng, priority=HIGH, value=3)
    services.quota_set(actor=admin_user, group=g("public"), kind="node", node_group=ng, priority=HIGH, value=4)
    entries = list(AuditEntry.objects.filter(action="quota.set").order_by("id"))
    assert [(e.before, e.after["value"]) for e in entries] == [(None, 3), ({"value": 3, "expires_at": None}, 4)]
    assert Quota.objects.get().value == 4


@pytest.mark.django_db
def test_researcher_cannot_set_quota(user):
    with pytest.raises(PermissionDenied):
        services.quota_set(actor=user, user=user, kind="node", node_group=NodeGroupFactory(), priority=HIGH, value=99)
    assert not Quota.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "node", "priority": HIGH, "value": 1}, "node_group"),
        ({"kind": "node", "node_group": "training", "value": 1}, "priority"),
        ({"kind": "node", "node_group": "training", "priority": -1, "value": 1}, "priority"),
        ({"kind": "node", "node_group": "training", "priority": HIGH, "value": -1}, "value"),
        ({"kind": "environment", "value": 1}, "environment"),
        ({"kind": "bogus", "value": 1}, "kind"),
    ],
)
def test_quota_set_rejects_bad_input(kwargs, field):
    if kwargs.get("node_group"):
        kwargs["node_group"] = NodeGroupFactory(name=kwargs["node_group"])
    with pytest.raises(ApplicationError) as info:
        services.quota_set(actor=None, group=g("public"), **kwargs)
    assert field in info.value.fields
    assert not Quota.objects.exists()


@pytest.mark.django_db
def test_my_quota_api(api, user):
    node("public", 2)
    node("public", 1, kind="node_limit")
    body = api.get("/api/v1/quota/").json()
    assert body["node"] == [
        {"group": "training", "priority": HIGH, "priority_name": "HIGH", "quota": 1, "limit": 1, "used": 0},
    ]


@pytest.mark.django_db
def test_admin_quota_api_accepts_priority_names(admin_api):
    NodeGroupFactory(name="training")
    response = admin_api.post(
        "/api/v1/admin/quotas/",
        {"group": "public", "kind": "node", "node_group": "training", "priority": "high", "value": 3},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["resource"] == "node:training:HIGH"
    bad = admin_api.post(
        "/api/v1/admin/quotas/",
        {"group": "public", "kind": "node", "node_group": "training", "priority": "urgent", "value": 3},
        format="json",
    )
    assert bad.status_code == 400
    assert "priority" in bad.json()["error"]["fields"]
