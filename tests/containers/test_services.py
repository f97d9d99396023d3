"""Container services: validation, quota, lifecycle, permissions, and placement by the pass."""

from __future__ import annotations

import pytest

from apps.containers import services
from apps.containers.choices import ContainerStatus, DesiredState, StopReason
from apps.containers.models import Container, ContainerService
from apps.core.errors import ApplicationError, Conflict, NotFound
from portal.realtime import capture_events
from tests.permissions import db_state

RECONCILE = "apps.launcher.tasks.container_reconcile_pass"


def create(user, jupyter, **kw):
    values = {"name": "lab", "node_group": jupyter.group, "cpu": 2, "memory_gib": 8}
    values.update(kw)
    return services.container_create(actor=user, **values)


def test_create_queues_the_container_and_asks_for_a_pass(jupyter, user, task_log):
    before = task_log.count("apps.scheduler.tasks.schedule_pass")
    with task_log.paused():
        c = create(user, jupyter)
    c.refresh_from_db()
    assert (c.status, c.desired, c.node_id) == (ContainerStatus.QUEUED, DesiredState.RUNNING, None)
    assert task_log.count("apps.scheduler.tasks.schedule_pass") == before + 1


def test_scheduling_pass_places_it_and_asks_the_launcher(jupyter, user, task_log):
    c = create(user, jupyter)
    c.refresh_from_db()
    assert c.status == ContainerStatus.STARTING
    assert c.node.name in {"j0", "j1"}
    assert c.run == 1
    assert c.started_spec["cpu"] == 2 and c.started_spec["services"] == []
    assert task_log.count(RECONCILE) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "Bad_Name"}, "name"),
        ({"name": ""}, "name"),
        ({"cpu": 0}, "cpu"),
        ({"cpu": 64}, "cpu"),  # bigger than any node
        ({"services": [{"name": "jupyter", "port": 9000, "command": "x"}]}, "services[0]"),
        ({"services": [{"name": "web", "port": 8888, "command": "x"}]}, "services[0]"),
        ({"services": [{"name": "web", "port": 70000, "command": "x"}]}, "services[0]"),
        ({"services": [{"name": "web", "port": 9000, "command": ""}]}, "services[0]"),
        ({"services": [{"name": "web", "port": 9000, "protocol": "udp", "command": "x"}]}, "services[0]"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_nothing_changes(jupyter, user, kwargs, field):
    before = db_state()
    with pytest.raises(ApplicationError) as info:
        create(user, jupyter, **kwargs)
    assert field in info.value.fields
    assert db_state() == before


def test_container_count_quota_gives_a_clear_error(jupyter, user, task_log):
    jupyter.set("jupyter_containers", 1)
    create(user, jupyter, name="one", start=False)
    before = db_state()
    with pytest.raises(ApplicationError) as info:
        create(user, jupyter, name="two", start=False)
    assert info.value.code == "quota_exceeded"
    assert info.value.status == 403
    assert "containers 1 in use + 1 asked > 1 allowed" in info.value.message
    assert db_state() == before


def test_cpu_quota_counts_only_running_containers(jupyter, user, task_log):
    jupyter.set("jupyter_cpu", 4)
    a = create(user, jupyter, name="a", cpu=3)
    b = create(user, jupyter, name="b", cpu=3, start=False)  # stopped containers use no CPU quota
    with pytest.raises(ApplicationError, match=r"CPUs 3 in use \+ 3 asked > 4 allowed"):
        services.container_start(actor=user, container=b)
    assert Container.objects.get(pk=b.pk).status == ContainerStatus.STOPPED
    services.container_stop(actor=user, container=a)
    services.container_start(actor=user, container=b)
    assert Container.objects.get(pk=b.pk).desired == DesiredState.RUNNING


def test_tcp_ports_quota(jupyter, user):
    jupyter.set("jupyter_ports", 1)
    with pytest.raises(ApplicationError) as info:
        create(user, jupyter, ssh=True, services=[{"name": "db", "port": 5432, "protocol": "tcp", "command": "pg"}])
    assert info.value.code == "quota_exceeded"
    c = create(user, jupyter, ssh=True, services=[{"name": "web", "port": 9000, "protocol": "http", "command": "w"}])
    assert ContainerService.objects.filter(container=c).count() == 1


def test_a_user_without_quota_in_the_group_cannot_create(jupyter, user):
    jupyter.set("jupyter_containers", 0, user=user)
    with pytest.raises(ApplicationError) as info:
        create(user, jupyter)
    assert info.value.code == "quota_exceeded"
    assert "0 allowed" in info.value.message


def test_same_name_twice_is_a_conflict_but_free_again_after_delete(jupyter, user, task_log):
    c = create(user, jupyter, start=False)
    with pytest.raises(Conflict):
        create(user, jupyter, start=False)
    services.container_delete(actor=user, container=c)
    again = create(user, jupyter, start=False)
    assert again.pk != c.pk


def test_another_user_cannot_see_or_act_and_nothing_changes(jupyter, user, other_user, task_log):
    c = create(user, jupyter)
    before = db_state()
    for action in (
        services.container_stop,
        services.container_start,
        services.container_restart,
        services.container_delete,
        services.container_keep,
    ):
        with pytest.raises(NotFound):
            action(actor=other_user, container=c)
    with pytest.raises(NotFound):
        services.container_update(actor=other_user, container=c, cpu=1)
    assert db_state() == before


def test_an_admin_may_stop_anyones_container_and_it_is_audited(jupyter, user, admin_user, task_log):
    from apps.core.models import AuditEntry

    c = create(user, jupyter)
    services.container_stop(actor=admin_user, container=c)
    c.refresh_from_db()
    assert (c.status, c.stop_reason) == (ContainerStatus.STOPPING, StopReason.ADMIN)
    assert AuditEntry.objects.filter(action="container.stop", actor=admin_user).count() == 1


def test_stop_of_a_queued_container_is_immediate(jupyter, user, task_log):
    with task_log.paused():
        c = create(user, jupyter)
        services.container_stop(actor=user, container=c)
    c.refresh_from_db()
    assert (c.status, c.desired, c.stop_reason) == (ContainerStatus.STOPPED, DesiredState.STOPPED, StopReason.USER)


def test_launcher_reports_drive_the_status_and_a_restart_queues_again(jupyter, user, task_log):
    c = create(user, jupyter)
    c.refresh_from_db()
    assert services.container_observed(container_id=c.pk, run=c.run, status=ContainerStatus.RUNNING)
    assert not services.container_observed(container_id=c.pk, run=c.run - 1, status=ContainerStatus.STOPPED)
    services.container_restart(actor=user, container=c)
    c.refresh_from_db()
    assert (c.status, c.stop_reason) == (ContainerStatus.STOPPING, StopReason.RESTART)
    with task_log.paused():
        services.container_observed(container_id=c.pk, run=c.run, status=ContainerStatus.STOPPED)
    c.refresh_from_db()
    assert (c.status, c.node_id) == (ContainerStatus.QUEUED, None)
    services.containers_place()
    c.refresh_from_db()
    assert (c.status, c.run) == (ContainerStatus.STARTING, 2)


def test_edits_take_effect_at_the_next_start(jupyter, user, task_log):
    c = create(user, jupyter)
    c.refresh_from_db()
    services.container_observed(container_id=c.pk, run=c.run, status=ContainerStatus.RUNNING)
    services.container_update(actor=user, container=c, cpu=4)
    c.refresh_from_db()
    assert c.cpu == 4 and c.started_spec["cpu"] == 2
    assert c.has_pending_edits


def test_status_events_go_to_the_owner_and_admins(jupyter, user, task_log):
    with capture_events() as sent:
        create(user, jupyter)
    statuses = [(e.groups, e.body["status"]) for e in sent]
    assert statuses == [
        ((f"user.{user.pk}", "admins"), "queued"),
        ((f"user.{user.pk}", "admins"), "starting"),
    ]


def test_containers_fill_a_node_and_never_over_commit(jupyter, user, other_user, task_log):
    jupyter.set("jupyter_cpu", 100)
    jupyter.set("jupyter_memory_gib", 1000)
    jupyter.set("jupyter_containers", 10)
    made = [create(user, jupyter, name=f"c{i}", cpu=3, memory_gib=8) for i in range(5)]
    rows = {c.pk: Container.objects.get(pk=c.pk) for c in made}
    per_node: dict[str, int] = {}
    for c in rows.values():
        if c.node is not None:
            per_node[c.node.name] = per_node.get(c.node.name, 0) + c.cpu
    assert sorted(per_node.values()) == [6, 6]  # two per 8-CPU node; the fifth waits
    waiting = [c for c in rows.values() if c.status == ContainerStatus.QUEUED]
    assert len(waiting) == 1
    assert waiting[0].status_message == "Every node of the group is in use; waiting for room."


def test_training_scheduler_leaves_nodes_with_containers_alone(cluster, submit, user, task_log):
    from apps.cluster.models import Node
    from apps.experiments.models import Attempt, Rank
    from apps.quotas import services as quota_services

    Node.objects.update(cpu=8, memory_bytes=32 * 2**30)

    for kind, value in (("jupyter_containers", 1), ("jupyter_cpu", 8), ("jupyter_memory_gib", 8)):
        quota_services.quota_set(actor=None, user=user, kind=kind, node_group=cluster.group, value=value)
    c = services.container_create(actor=user, name="dev", node_group=cluster.group, cpu=1, memory_gib=1)
    c.refresh_from_db()
    assert c.status == ContainerStatus.STARTING
    chain = submit(user, nodes=4)  # four nodes, one of which hosts the container
    attempt = Attempt.objects.get(chain=chain)
    assert attempt.queue_status == "queued"
    small = submit(user, nodes=3)
    held = set(Rank.objects.filter(attempt__chain=small, holds_node=True).values_list("node_id", flat=True))
    assert len(held) == 3 and c.node_id not in held
    # A node a job holds takes no container.
    services.container_stop(actor=user, container=c)
    services.container_observed(container_id=c.pk, run=c.run, status=ContainerStatus.STOPPED)
    services.container_start(actor=user, container=c)
    c.refresh_from_db()
    assert c.node_id not in held and c.status == ContainerStatus.STARTING
