"""Notices (root admins create, edit, expire, delete; each write one audit entry with before and
after; the dashboard shows the result) and the audit log (filters, pages, CSV)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from django.contrib.auth.models import Group
from django.utils import timezone

from apps.core.audit import audit_record
from apps.core.models import AuditEntry
from apps.web.models import Notice
from tests.factories import UserFactory
from tests.permissions import db_state

FMT = "%Y-%m-%dT%H:%M"


def _new(admins, **data):
    values = {
        "title": "Maintenance",
        "body": "Rack b reboots.",
        "severity": "warning",
        "audience": "all",
        "starts_at": (timezone.localtime() - timedelta(minutes=5)).strftime(FMT),
        "expires_at": "",
        "group": "",
        "user": "",
    }
    values.update(data)
    return admins["root"].post("/monitor/notices/new/", values)


def test_root_creates_edits_expires_and_deletes_a_notice_each_audited(admins, browser_for):
    before = AuditEntry.objects.count()
    response = _new(admins)
    assert response.status_code == 302 and response["Location"] == "/monitor/notices/"
    notice = Notice.objects.get()
    assert (notice.title, notice.severity, notice.audience, notice.created_by.username) == (
        "Maintenance",
        "warning",
        "all",
        "m-root",
    )
    (entry,) = AuditEntry.objects.order_by("id")[before:]
    assert (entry.action, entry.before, entry.after["title"], entry.actor_name) == (
        "notice.create",
        None,
        "Maintenance",
        "m-root",
    )
    reader = browser_for(UserFactory(username="n-reader"))
    assert "Rack b reboots." in reader.get("/").content.decode()

    team = Group.objects.create(name="vision")
    response = admins["root"].post(
        f"/monitor/notices/{notice.pk}/",
        {
            "title": "Maintenance tonight",
            "body": "Rack b reboots.",
            "severity": "danger",
            "audience": "group",
            "group": "vision",
            "user": "",
            "starts_at": timezone.localtime(notice.starts_at).strftime(FMT),
            "expires_at": "",
        },
    )
    assert response.status_code == 302
    notice.refresh_from_db()
    assert (notice.title, notice.severity, notice.group_id) == ("Maintenance tonight", "danger", team.pk)
    entry = AuditEntry.objects.latest("id")
    assert entry.action == "notice.update"
    assert (entry.before["title"], entry.after["title"]) == ("Maintenance", "Maintenance tonight")
    assert (entry.before["group"], entry.after["group"]) == (None, "vision")
    assert "Rack b reboots." not in reader.get("/").content.decode()  # not in the group any more

    count = AuditEntry.objects.count()
    assert admins["root"].post(f"/monitor/notices/{notice.pk}/expire/").status_code == 302
    notice.refresh_from_db()
    assert notice.expires_at is not None and notice.expires_at <= timezone.now()
    assert AuditEntry.objects.count() == count + 1
    entry = AuditEntry.objects.latest("id")
    assert (entry.action, entry.before["expires_at"]) == ("notice.update", None) and entry.after["expires_at"]
    # Expiring twice: refused, nothing written.
    state = db_state()
    body = admins["root"].post(f"/monitor/notices/{notice.pk}/expire/", follow=True).content.decode()
    assert "This notice has already expired." in body
    assert db_state() == state
    page = admins["ops"].get("/monitor/notices/").content.decode()
    assert "Over" in page and "/expire/" not in page and "New notice" not in page  # ops read only

    assert admins["root"].post(f"/monitor/notices/{notice.pk}/delete/").status_code == 302
    assert not Notice.objects.exists()
    entry = AuditEntry.objects.latest("id")
    assert (entry.action, entry.before["title"], entry.after) == ("notice.delete", "Maintenance tonight", None)


def test_bad_notices_are_refused_on_the_field_at_fault_and_nothing_is_written(admins):
    state = db_state()
    cases = [
        ({"title": ""}, "This field is required."),
        ({"audience": "group", "group": ""}, "Choose the group this notice is for."),
        ({"audience": "group", "group": "nope"}, "No group is named nope."),
        ({"audience": "user", "user": "ghost"}, "No user is named ghost."),
        ({"severity": "apocalypse"}, "Select a valid choice."),
        (
            {
                "starts_at": timezone.localtime().strftime(FMT),
                "expires_at": (timezone.localtime() - timedelta(days=1)).strftime(FMT),
            },
            "The notice must end after it starts.",
        ),
    ]
    for data, message in cases:
        response = _new(admins, **data)
        assert response.status_code == 400, data
        assert message in response.content.decode(), data
    assert db_state() == state


def test_a_scheduled_notice_cannot_be_expired(admins):
    _new(admins, starts_at=(timezone.localtime() + timedelta(days=1)).strftime(FMT))
    notice = Notice.objects.get()
    state = db_state()
    body = admins["root"].post(f"/monitor/notices/{notice.pk}/expire/", follow=True).content.decode()
    assert "This notice is not shown yet: change its dates or delete it." in body
    assert db_state() == state
    assert "Scheduled" in admins["root"].get("/monitor/notices/").content.decode()


def _entries(n: int, **kw):
    people = {name: UserFactory(username=name) for name in ("alice-admin", "bob-admin")}
    for i in range(n):
        audit_record(
            actor=people["alice-admin" if i % 2 else "bob-admin"],
            action="quota.set" if i % 3 else "node.drain",
            target_type="quotas.quota" if i % 3 else "cluster.node",
            target_id=str(i),
            target_repr=f"thing-{i}",
            before={"value": i},
            after={"value": i + 1},
        )


def test_audit_log_filters_pages_and_csv(admins, django_assert_num_queries):
    _entries(120)
    with django_assert_num_queries(7):  # session, user, groups, unread; count, page, types
        body = admins["quota_editor"].get("/monitor/audit/").content.decode()
    assert body.count("data-audit=") == 50 and "Page 1 of 3" in body
    assert "value: 119" in body  # newest first
    body = admins["quota_editor"].get("/monitor/audit/?actor=alice-admin&action=quota.").content.decode()
    shown = [int(x) for x in re.findall(r"thing-(\d+)", body)]
    assert shown == [i for i in range(119, -1, -1) if i % 2 and i % 3][:50]
    body = admins["quota_editor"].get("/monitor/audit/?target_type=cluster.node&target=42").content.decode()
    assert re.findall(r"thing-(\d+)", body) == ["42"]
    with django_assert_num_queries(7):
        admins["quota_editor"].get("/monitor/audit/?actor=bob-admin&page=2")
    today = timezone.localdate().isoformat()
    response = admins["ops"].get(f"/monitor/audit/?action=node.drain&start={today}&end={today}&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["time", "actor", "action"]
    assert [r[4] for r in rows[1:]] == [str(i) for i in range(119, -1, -1) if i % 3 == 0]
    assert rows[1][6:8] == ['{"value": 117}', '{"value": 118}']
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert admins["ops"].get(f"/monitor/audit/?start={tomorrow}").content.decode().count("data-audit=") == 0


def test_audit_log_bad_filters_answer_400(admins):
    for query, message in (
        ("start=2026-12-05&end=2026-12-01", "The period ends before it starts"),
        ("start=soon", "Enter a valid date."),
    ):
        response = admins["ops"].get(f"/monitor/audit/?{query}")
        assert response.status_code == 400 and message in response.content.decode()
