"""The Quotas page: the grid per node group × priority for a user or group, use against quota,
inline edits validated as a whole, one audit entry per changed cell, effective at the next pass."""

from __future__ import annotations

import re

from django.contrib.auth.models import Group

from apps.core.models import AuditEntry
from apps.experiments.choices import ChainStatus
from apps.experiments.models import Chain
from apps.quotas.models import Quota
from apps.quotas.selectors import quota_resolve
from tests.factories import NodeGroupFactory, UserFactory
from tests.permissions import db_state


def cell(body: str, key: str) -> str:
    return re.search(rf'data-cell="{re.escape(key)}">(.*?)</td>', body, re.S).group(1)


def test_user_grid_shows_use_against_quota_and_inherited_values(cluster, submit, admins, django_assert_num_queries):
    person = UserFactory(username="quser")
    cluster.set_quota(person, 30, 3)  # own row at HIGH
    submit(person, name="q1", nodes=2, priority=30)
    key_high = f"node:{cluster.group.pk}:30"
    key_normal = f"node:{cluster.group.pk}:10"
    with django_assert_num_queries(14):
        response = admins["quota_editor"].get("/monitor/quotas/?user=quser")
    assert response.status_code == 200
    body = response.content.decode()
    high = cell(body, key_high)
    assert re.search(r"data-use>2 / 3<", high) and 'value="3"' in high
    normal = cell(body, key_normal)  # inherited from public (4): blank box, greyed placeholder
    assert re.search(r"data-use>0 / 4<", normal) and 'value=""' in normal and 'placeholder="4"' in normal
    for name in ("more-a", "more-b", "more-c"):  # the count does not grow with node groups
        NodeGroupFactory(name=name)
    with django_assert_num_queries(14):
        assert admins["quota_editor"].get("/monitor/quotas/?user=quser").status_code == 200


def test_saving_the_grid_sets_and_removes_rows_with_one_audit_entry_each(cluster, admins, task_log):
    person = UserFactory(username="quser2")
    cluster.set_quota(person, 30, 3)
    g = cluster.group.pk
    before = AuditEntry.objects.count()
    passes = task_log.count("apps.scheduler.tasks.schedule_pass")
    response = admins["quota_editor"].post(
        "/monitor/quotas/save/",
        {"subject_type": "user", "subject": "quser2", f"node:{g}:30": "", f"node:{g}:50": "1", f"node:{g}:10": ""},
    )
    assert response.status_code == 302 and response["Location"] == "/monitor/quotas/?user=quser2"
    rows = dict(Quota.objects.filter(user=person, kind="node").values_list("priority", "value"))
    assert rows == {50: 1}
    assert quota_resolve(user=person).nodes("training", 30) == 4  # back to public's
    entries = list(AuditEntry.objects.order_by("id")[before:])
    assert [(e.action, e.before, e.after) for e in entries] == [
        ("quota.delete", {"value": 3}, None),
        ("quota.set", None, {"value": 1, "expires_at": None}),
    ]
    assert task_log.count("apps.scheduler.tasks.schedule_pass") > passes  # effective at the next pass


def test_group_grid_edits_the_group_rows(cluster, admins):
    public = Group.objects.get(name="public")
    g = cluster.group.pk
    response = admins["root"].post(
        "/monitor/quotas/save/",
        {"subject_type": "group", "subject": "public", f"node:{g}:40": "2", f"jupyter_containers:{g}": "3"},
    )
    assert response.status_code == 302
    assert Quota.objects.get(group=public, kind="node", priority=40).value == 2
    assert Quota.objects.get(group=public, kind="jupyter_containers").value == 3
    body = admins["root"].get("/monitor/quotas/?group=public").content.decode()
    assert 'value="2"' in cell(body, f"node:{g}:40")


def test_one_bad_cell_saves_nothing_and_says_which(cluster, admins):
    g = cluster.group.pk
    before = db_state()
    response = admins["quota_editor"].post(
        "/monitor/quotas/save/",
        {"subject_type": "group", "subject": "public", f"node:{g}:40": "2", f"node:{g}:30": "-1", f"node:{g}:20": "x"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "A whole number from 0 to 1000000, or blank to inherit." in cell(body, f"node:{g}:30")
    assert 'value="-1"' in cell(body, f"node:{g}:30")  # what was typed stays for correcting
    assert 'value="x"' in cell(body, f"node:{g}:20")
    assert db_state() == before


def test_lowering_a_quota_takes_effect_at_the_next_pass(cluster, submit, admins):
    person = UserFactory(username="quser3")
    cluster.set_quota(person, 10, 1)
    first = submit(person, name="w1")
    second = submit(person, name="w2")
    assert Chain.objects.get(pk=second.pk).status == ChainStatus.WAITING
    g = cluster.group.pk
    admins["quota_editor"].post(
        "/monitor/quotas/save/", {"subject_type": "user", "subject": "quser3", f"node:{g}:10": "2"}
    )
    assert Chain.objects.get(pk=second.pk).status == ChainStatus.STARTING
    assert Chain.objects.get(pk=first.pk).status == ChainStatus.STARTING


def test_unknown_subject_is_404(db, admins):
    assert admins["ops"].get("/monitor/quotas/?user=ghost").status_code == 404
    assert (
        admins["quota_editor"].post("/monitor/quotas/save/", {"subject_type": "user", "subject": "ghost"}).status_code
        == 404
    )
