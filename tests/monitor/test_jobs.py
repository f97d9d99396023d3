"""The Jobs page: everybody's jobs with the portal's filters plus the owner; admin actions one by
one or in a batch, each audited with the status before and after."""

from __future__ import annotations

import re

from apps.core.models import AuditEntry
from apps.experiments.choices import ChainStatus, WorkerStatus
from apps.experiments.models import Chain
from tests.factories import UserFactory
from tests.permissions import db_state


def test_lists_everyones_jobs_with_filters_and_constant_queries(cluster, submit, admins, django_assert_num_queries):
    ann, ben = UserFactory(username="ann"), UserFactory(username="ben")
    for i in range(3):
        submit(ann, name=f"ann-{i}", tags=["t1"])
    submit(ben, name="ben-0")
    # session, user, groups; count, the page's keys, its rows, their tags; node groups; unread
    with django_assert_num_queries(9):
        body = admins["quota_editor"].get("/monitor/jobs/").content.decode()
    assert body.count("<tr data-job=") == 4 and "ann-2" in body and "ben-0" in body
    assert 'name="ids"' not in body  # a quota editor sees, does not act
    for i in range(5):
        submit(ben, name=f"more-{i}")
    with django_assert_num_queries(9):
        assert admins["quota_editor"].get("/monitor/jobs/").content.decode().count("<tr data-job=") == 9
    only_ben = admins["ops"].get("/monitor/jobs/?owner=ben&status=pending").content.decode()
    assert "ann-" not in only_ben and 'name="ids"' in only_ben


def test_a_deep_page_lists_its_jobs_newest_first(cluster, submit, admins, monkeypatch, django_assert_num_queries):
    from monitor import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    ann = UserFactory(username="pager")
    chains = [submit(ann, name=f"p-{i}", tags=["x"]) for i in range(5)]
    with django_assert_num_queries(9):
        body = admins["ops"].get("/monitor/jobs/?page=2").content.decode()
    assert [int(pk) for pk in re.findall(r'<tr data-job="(\d+)"', body)] == [chains[2].pk, chains[1].pk]
    last = admins["ops"].get("/monitor/jobs/?page=3&owner=pager").content.decode()
    assert [int(pk) for pk in re.findall(r'<tr data-job="(\d+)"', last)] == [chains[0].pk]


def test_batch_suspend_and_stop_audit_each_job(cluster, submit, admins):
    ann = UserFactory(username="ann2")
    running = submit(ann, name="r")
    waiting = submit(ann, name="w", nodes=4)
    before = AuditEntry.objects.count()
    response = admins["ops"].post(
        "/monitor/jobs/batch/", {"action": "suspend", "ids": [running.pk, waiting.pk], "next": "/monitor/jobs/"}
    )
    assert response.status_code == 302 and response["Location"] == "/monitor/jobs/"
    assert Chain.objects.get(pk=running.pk).latest_attempt.worker_status == WorkerStatus.SUSPENDING
    assert Chain.objects.get(pk=waiting.pk).status == ChainStatus.HELD
    entries = list(AuditEntry.objects.order_by("id")[before:])
    assert [(e.action, e.target_id, e.before["status"], e.after["status"]) for e in entries] == [
        ("job.suspend", str(running.pk), "starting", "suspending"),
        ("job.suspend", str(waiting.pk), "waiting", "held"),
    ]
    assert all(e.actor_name == "m-ops" and e.note == "owner ann2" for e in entries)

    before = AuditEntry.objects.count()
    response = admins["root"].post("/monitor/jobs/batch/", {"action": "stop", "ids": [waiting.pk, 999999]}, follow=True)
    body = response.content.decode()
    assert "1 job done." in body and "#999999: No such job." in body
    assert Chain.objects.get(pk=waiting.pk).status == ChainStatus.CANCELED
    (entry,) = AuditEntry.objects.order_by("id")[before:]
    assert (entry.action, entry.before["status"], entry.after["status"]) == ("job.stop", "held", "canceled")


def test_bad_batch_changes_nothing(cluster, submit, admins):
    chain = submit(UserFactory(username="ann3"), name="x")
    before = db_state()
    for data in ({"action": "explode", "ids": [chain.pk]}, {"action": "stop"}, {"action": "stop", "ids": ["x"]}):
        response = admins["ops"].post("/monitor/jobs/batch/", data, follow=True)
        assert "Choose up to 200 jobs and an action." in response.content.decode()
    assert db_state() == before
