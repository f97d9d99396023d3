"""Idle reclaim: a container idle past its group's time is warned, then stopped after the grace,
unless its owner keeps it or it becomes active again. Time is driven by the test."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.containers import services
from apps.containers.choices import ContainerStatus, StopReason
from apps.containers.models import Container, ContainerGroupPolicy
from apps.notifications.models import Notification


def running(user, jupyter, **kw):
    c = services.container_create(actor=user, name=kw.pop("name", "lab"), node_group=jupyter.group, cpu=1, memory_gib=1)
    c.refresh_from_db()
    services.container_observed(container_id=c.pk, run=c.run, status=ContainerStatus.RUNNING)
    c.refresh_from_db()
    return c


def test_idle_container_is_warned_then_stopped_after_the_grace(jupyter, user, task_log):
    ContainerGroupPolicy.objects.create(node_group=jupyter.group, idle_seconds=3600, grace_seconds=600)
    c = running(user, jupyter)
    t0 = c.last_activity_at
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=3599)) == {"warned": [], "stopped": []}
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=3600)) == {"warned": [c.pk], "stopped": []}
    c.refresh_from_db()
    assert c.idle_warned_at == t0 + timedelta(seconds=3600)
    note = Notification.objects.get(recipient=user, kind="container")
    assert (note.target_url, note.target_title) == (f"/containers/{c.pk}/", "lab")
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=4199)) == {"warned": [], "stopped": []}
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=4200)) == {"warned": [], "stopped": [c.pk]}
    c.refresh_from_db()
    assert (c.status, c.desired, c.stop_reason, c.status_message) == (
        ContainerStatus.STOPPING,
        "stopped",
        StopReason.IDLE,
        "Stopped as idle.",
    )


def test_keeping_it_restarts_the_idle_clock(jupyter, user, task_log):
    ContainerGroupPolicy.objects.create(node_group=jupyter.group, idle_seconds=3600, grace_seconds=600)
    c = running(user, jupyter)
    t0 = c.last_activity_at
    services.containers_reclaim_idle(t0 + timedelta(seconds=3600))
    services.container_keep(actor=user, container=c)
    c.refresh_from_db()
    assert c.idle_warned_at is None
    kept = c.kept_at
    assert services.containers_reclaim_idle(kept + timedelta(seconds=3599)) == {"warned": [], "stopped": []}
    assert Container.objects.get(pk=c.pk).status == ContainerStatus.RUNNING


def test_activity_after_the_warning_clears_it(jupyter, user, task_log):
    ContainerGroupPolicy.objects.create(node_group=jupyter.group, idle_seconds=60, grace_seconds=60)
    c = running(user, jupyter)
    t0 = c.last_activity_at
    services.containers_reclaim_idle(t0 + timedelta(seconds=60))
    services.container_record_activity(container_id=c.pk, run=c.run, last_activity=t0 + timedelta(seconds=90))
    assert services.containers_reclaim_idle(t0 + timedelta(seconds=130)) == {"warned": [], "stopped": []}
    c.refresh_from_db()
    assert c.idle_warned_at is None and c.status == ContainerStatus.RUNNING


def test_groups_with_reclaim_off_are_left_alone(jupyter, user, task_log):
    ContainerGroupPolicy.objects.create(node_group=jupyter.group, idle_reclaim=False, idle_seconds=1)
    c = running(user, jupyter)
    far = timezone.now() + timedelta(days=30)
    assert services.containers_reclaim_idle(far) == {"warned": [], "stopped": []}
    assert Container.objects.get(pk=c.pk).idle_warned_at is None
