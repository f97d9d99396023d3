"""Admin priority changes and moves between node groups: the scheduler's rules apply, each change
is one audit entry with before/after, the owner's pages are told, and refusals change nothing."""

from __future__ import annotations

from apps.cluster import services as cluster_services
from apps.core.models import AuditEntry
from apps.experiments.choices import WorkerStatus
from apps.experiments.models import Attempt, Chain
from portal.realtime import capture_events, user_group
from tests.factories import UserFactory
from tests.permissions import db_state


def _latest(chain: Chain) -> Attempt:
    chain.refresh_from_db()
    return Attempt.objects.get(pk=chain.latest_attempt_id)


def test_admin_raises_a_waiting_jobs_priority_audited_and_the_owner_is_told(cluster, submit, admins):
    ann = UserFactory(username="p-ann")
    submit(ann, name="big", nodes=4, priority="NORMAL")
    waiting = submit(ann, name="w", nodes=4, priority="LOW")
    assert _latest(waiting).worker_status == WorkerStatus.QUEUED
    before = AuditEntry.objects.count()
    with capture_events() as sent:
        response = admins["ops"].post(
            "/monitor/jobs/batch/", {"action": "priority", "priority": "HIGH", "ids": [waiting.pk]}, follow=True
        )
    assert "1 job done." in response.content.decode()
    waiting.refresh_from_db()
    assert waiting.priority == 30 and _latest(waiting).priority == 30
    (entry,) = AuditEntry.objects.order_by("id")[before:]
    assert (entry.action, entry.target_id, entry.before, entry.after, entry.actor_name, entry.note) == (
        "job.priority",
        str(waiting.pk),
        {"priority": "LOW"},
        {"priority": "HIGH"},
        "m-ops",
        "owner p-ann",
    )
    told = [e for e in sent.of_type("chain.status") if e.body["chain_id"] == waiting.pk]
    assert told and user_group(ann.pk) in told[0].groups
    # Within 10 s again: the scheduler's rate limit refuses it, nothing changes.
    state = db_state()
    body = (
        admins["root"]
        .post("/monitor/jobs/batch/", {"action": "priority", "priority": "LOW", "ids": [waiting.pk]}, follow=True)
        .content.decode()
    )
    assert f"#{waiting.pk}: The priority of a job can be changed once every 10 seconds." in body
    assert db_state() == state


def test_a_level_the_owners_quota_can_never_start_is_refused(cluster, submit, admins):
    ann = UserFactory(username="p-bob")
    cluster.set_quota(ann, 40, 0)  # bob may not run at VERY_HIGH
    from django.contrib.auth.models import Group

    cluster.set_quota(Group.objects.get(name="public"), 40, 0)
    chain = submit(ann, name="w", nodes=2, priority="LOW")
    state = db_state()
    body = (
        admins["ops"]
        .post("/monitor/jobs/batch/", {"action": "priority", "priority": "VERY_HIGH", "ids": [chain.pk]}, follow=True)
        .content.decode()
    )
    assert "so it can never start at this level" in body
    assert db_state() == state


def test_admin_moves_a_waiting_job_to_another_group_where_it_starts(cluster, submit, admins):
    small = cluster_services.node_group_upsert(actor=None, name="small")
    cluster_services.node_upsert(actor=None, name="s0", group=small, gpu_count=2)
    from django.contrib.auth.models import Group

    from apps.quotas import services as quota_services

    quota_services.quota_set(
        actor=None, group=Group.objects.get(name="public"), kind="node", node_group=small, priority=10, value=1
    )
    ann = UserFactory(username="m-ann")
    submit(ann, name="big", nodes=4, priority="NORMAL")
    waiting = submit(ann, name="w", nodes=1, priority="NORMAL")
    assert _latest(waiting).worker_status == WorkerStatus.QUEUED
    before = AuditEntry.objects.count()
    response = admins["root"].post("/monitor/jobs/batch/", {"action": "move", "group": "small", "ids": [waiting.pk]})
    assert response.status_code == 302
    waiting.refresh_from_db()
    assert waiting.node_group == small
    assert _latest(waiting).worker_status == WorkerStatus.STARTING  # the pass that followed started it
    assert list(_latest(waiting).ranks.values_list("node__name", flat=True)) == ["s0"]
    (entry,) = AuditEntry.objects.order_by("id")[before:]
    assert (entry.action, entry.before, entry.after) == (
        "job.move",
        {"node_group": "training"},
        {"node_group": "small"},
    )


def test_moves_that_break_the_rules_are_refused_and_change_nothing(cluster, submit, admins):
    tiny = cluster_services.node_group_upsert(actor=None, name="tiny")
    cluster_services.node_upsert(actor=None, name="t0", group=tiny, gpu_count=2)
    ann = UserFactory(username="m-bob")
    running = submit(ann, name="r", nodes=2, priority="NORMAL")
    waiting = submit(ann, name="w", nodes=4, priority="NORMAL")
    state = db_state()
    cases = [
        (running, "tiny", "Only a waiting job can move to another node group"),
        (waiting, "tiny", "Group tiny has 1 usable node(s); this job asks for 4."),
        (waiting, "training", "This job is already in training."),
        (waiting, "nowhere", "Unknown node group &#x27;nowhere&#x27;"),
    ]
    for chain, group, message in cases:
        body = (
            admins["ops"]
            .post("/monitor/jobs/batch/", {"action": "move", "group": group, "ids": [chain.pk]}, follow=True)
            .content.decode()
        )
        assert message in body, (group, message)
    assert db_state() == state
    # The wrong admin group: 403 and nothing changed.
    response = admins["quota_editor"].post(
        "/monitor/jobs/batch/", {"action": "move", "group": "tiny", "ids": [waiting.pk]}
    )
    assert response.status_code == 403
    body = (
        admins["ops"]
        .post("/monitor/jobs/batch/", {"action": "move", "ids": [waiting.pk]}, follow=True)
        .content.decode()
    )
    assert "Choose the priority or the node group to apply." in body
    assert db_state() == state
