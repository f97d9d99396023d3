"""The load history behind the scheduler overview's charts: what a pass samples, how often, and
how long it is kept (``apps/scheduler/history.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.cluster import services as cluster_services
from apps.experiments import lifecycle
from apps.experiments.choices import RankStatus
from apps.experiments.models import Attempt, Chain
from apps.scheduler import driver, history
from apps.scheduler.models import LoadSample
from tests.factories import NodeGroupFactory, UserFactory

# A minute boundary, so the test controls which passes fall into the same minute.
T0 = datetime(2026, 12, 3, 12, 0, 5, tzinfo=UTC)
M0 = history.minute_of(T0)


def _run(chain: Chain) -> Attempt:
    chain.refresh_from_db()
    attempt = Attempt.objects.get(pk=chain.latest_attempt_id)
    for rank in attempt.ranks.all():
        lifecycle.rank_update(attempt_id=attempt.pk, rank=rank.rank, status=RankStatus.RUNNING)
    lifecycle.attempt_mark_running(attempt_id=attempt.pk)
    return attempt


@pytest.fixture
def fresh(cluster):
    """The cluster, with the samples its set-up passes took (at the real time) forgotten."""
    LoadSample.objects.all().delete()
    history.MEMO.sampled = history.MEMO.pruned = None
    return cluster


def _rows() -> list[tuple]:
    return list(
        LoadSample.objects.order_by("minute", "group__name").values_list(
            "minute", "group__name", "nodes", "used", "free", "gpus", "gpus_used", "running", "waiting", "levels"
        )
    )


def test_a_pass_samples_each_group_once_a_minute(cluster, submit, task_log):
    ann = UserFactory(username="h-ann")
    NodeGroupFactory(name="empty")  # no nodes: nothing to chart, no row
    cluster_services.node_upsert(actor=None, name="c0", group=NodeGroupFactory(name="cpu"), gpu_count=0)
    with task_log.paused():
        running = submit(ann, name="run", nodes=2, priority="HIGH")
    driver.run_pass(now=T0 - timedelta(minutes=5))
    _run(running)
    with task_log.paused():
        submit(ann, name="starts", nodes=1, priority="NORMAL")
        submit(ann, name="waits", nodes=4, priority="LOW")
    LoadSample.objects.all().delete()
    history.MEMO.sampled = None

    driver.run_pass(now=T0)
    # training: "run" holds 2 nodes at HIGH, "starts" just started on 1 (NORMAL), "waits" needs 4:
    # 3 of 4 nodes used (24 of 32 GPUs), 1 free. cpu: one idle node without GPUs.
    assert _rows() == [
        (M0, "cpu", 1, 0, 1, 0, 0, 0, 0, {}),
        (M0, "training", 4, 3, 1, 32, 24, 2, 1, {"30": [1, 0], "10": [1, 0], "0": [0, 1]}),
    ]
    driver.run_pass(now=T0 + timedelta(seconds=54))  # same minute: this process skips it
    history.MEMO.sampled = None
    driver.run_pass(now=T0 + timedelta(seconds=50))  # another process, same minute: the constraint
    assert LoadSample.objects.count() == 2
    driver.run_pass(now=T0 + timedelta(seconds=56))  # the next minute
    assert sorted(set(LoadSample.objects.values_list("minute", flat=True))) == [M0, M0 + 1]
    assert LoadSample.objects.count() == 4


def test_sampling_costs_a_handful_of_queries_once_a_minute(cluster, submit, task_log):
    ann = UserFactory(username="h-bob")
    with task_log.paused():
        submit(ann, nodes=1)
    driver.run_pass(now=T0)
    loaded = driver.load_snapshot(T0)
    history.MEMO.sampled = None
    history.MEMO.pruned = M0  # pruned a moment ago
    with CaptureQueriesContext(connection) as sampled:
        assert history.load_sample_record(loaded.snapshot, {}, T0 + timedelta(minutes=1)) == 1
    # the nodes' GPUs, then one insert (in a transaction of its own)
    statements = [q["sql"].split()[0] for q in sampled]
    assert [s for s in statements if s not in ("BEGIN", "COMMIT")] == ["SELECT", "INSERT"]
    with CaptureQueriesContext(connection) as skipped:
        assert history.load_sample_record(loaded.snapshot, {}, T0 + timedelta(minutes=1, seconds=30)) == 0
    assert len(skipped) == 0


def test_a_failing_insert_is_logged_and_the_pass_goes_on(fresh, monkeypatch, caplog):
    def broken(*args, **kwargs):
        from django.db import DatabaseError

        raise DatabaseError("disk full")

    monkeypatch.setattr(LoadSample.objects, "bulk_create", broken)
    result = driver.run_pass(now=T0)
    assert result.total_seconds > 0
    assert LoadSample.objects.count() == 0
    assert "could not record the load sample" in caplog.text


@pytest.mark.django_db
def test_prune_thins_after_a_day_and_drops_after_the_retention(settings):
    settings.ROTA_LOAD_HISTORY_DAYS = 3
    group = NodeGroupFactory(name="g")
    day = 24 * 60
    minutes = [
        M0,  # now
        M0 - day + 1,  # within the day, not a tenth minute: kept
        M0 - day - 1,  # older than a day, not a tenth minute: thinned
        M0 - day - 5,  # ditto
        (M0 - day - 10) // 10 * 10,  # older than a day, a tenth minute: kept
        (M0 - 3 * day + 10) // 10 * 10,  # a tenth minute just inside the retention: kept
        M0 - 3 * day - 1,  # past the retention: dropped
        (M0 - 3 * day - 10) // 10 * 10,  # ditto, even a tenth minute
    ]
    LoadSample.objects.bulk_create([LoadSample(minute=m, group=group) for m in minutes])
    assert history.load_history_prune(minute=M0) == 4
    assert sorted(LoadSample.objects.values_list("minute", flat=True)) == sorted(
        [M0, M0 - day + 1, (M0 - day - 10) // 10 * 10, (M0 - 3 * day + 10) // 10 * 10]
    )
    assert history.load_history_prune(minute=M0) == 0


def test_passes_prune_at_most_every_ten_minutes(fresh, settings):
    settings.ROTA_LOAD_HISTORY_DAYS = 1
    old = LoadSample.objects.create(minute=M0 - 2 * 24 * 60, group=fresh.group)
    history.MEMO.pruned = M0 - 9
    driver.run_pass(now=T0)
    assert LoadSample.objects.filter(pk=old.pk).exists()  # pruned 9 minutes ago: not yet
    driver.run_pass(now=T0 + timedelta(minutes=1))
    assert not LoadSample.objects.filter(pk=old.pk).exists()
    assert history.MEMO.pruned == M0 + 1
