"""The incremental scheduler snapshot: after every kind of change, what the kept rows plus the
change log give is exactly what a full read gives; the safety nets fall back to a full read."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.cluster import services as cluster_services
from apps.experiments import lifecycle
from apps.experiments import services as experiment_services
from apps.experiments.choices import RankStatus, WorkerStatus
from apps.experiments.models import Attempt, Chain
from apps.scheduler import driver, snapshot
from apps.scheduler.models import SnapshotChange
from apps.scheduler.snapshot import CACHE, SnapshotCache, snapshot_load
from tests.factories import UserFactory


def same(incremental: snapshot.Loaded, full: snapshot.Loaded) -> None:
    assert incremental.snapshot == full.snapshot
    assert incremental.node_ids == full.node_ids
    assert incremental.user_ids == full.user_ids
    assert incremental.chain_of == full.chain_of
    assert incremental.owner_of == full.owner_of
    assert incremental.held_by_user == full.held_by_user
    assert incremental.current == full.current


def check(now=None) -> snapshot.Loaded:
    """Load through the process cache (incremental) and afresh; they must be equal."""
    now = now or timezone.now()
    kept = CACHE.load(now)
    assert kept.incremental
    same(kept, snapshot_load(now))
    return kept


def latest(chain: Chain) -> Attempt:
    chain.refresh_from_db()
    return Attempt.objects.get(pk=chain.latest_attempt_id)


def run(chain: Chain) -> None:
    attempt = latest(chain)
    for rank in attempt.ranks.all():
        lifecycle.rank_update(attempt_id=attempt.pk, rank=rank.rank, status=RankStatus.RUNNING)
    lifecycle.attempt_mark_running(attempt_id=attempt.pk)


def waiting_job(submit, user, name: str = "waits") -> Chain:
    """A job that waits: another one holds all four nodes."""
    submit(UserFactory(username="filler"), nodes=4, priority="LOW", name="filler")
    return submit(user, nodes=4, priority="LOW", name=name)


@pytest.fixture
def fast_policy(settings):
    settings.ROTA_SCHEDULER = {**settings.ROTA_SCHEDULER, "MIN_RUN_SECONDS": 0.0}


@pytest.fixture(autouse=True)
def no_periodic_reload(monkeypatch):
    """Only the safety-net test reaches the periodic full reloads (a slow host must not either)."""
    monkeypatch.setattr(snapshot, "FULL_RELOAD_PASSES", 10_000)
    monkeypatch.setattr(snapshot, "FULL_RELOAD_SECONDS", 3600.0)


def test_every_kind_of_change_is_seen_by_the_incremental_snapshot(cluster, submit, fast_policy, admin_user):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    low = submit(alice, nodes=3, priority="LOW")  # passes run inline after each service
    run(low)
    assert check().reloaded == 1  # the ranks and the attempt the launcher updated
    assert check().reloaded == 0  # nothing changed since

    waiting = submit(bob, nodes=2, priority="LOW", name="second")  # a new attempt, waiting
    check()
    experiment_services.experiment_set_priority(user=bob, chain=waiting, custom_rank=5.0)  # chain column
    check()
    Chain.objects.filter(pk=waiting.pk).update(run_estimate_seconds=7200)  # a chain column, bare update
    assert {w.attempt_id: w.run_estimate for w in check().snapshot.waiting}[latest(waiting).pk] == 7200.0
    experiment_services.experiment_suspend(actor=bob, chain=waiting)  # held: leaves the queue
    assert latest(waiting).pk not in {w.attempt_id for w in check().snapshot.waiting}
    experiment_services.experiment_resume(actor=bob, chain=waiting)  # back; its pass explains it again
    assert check().current[latest(waiting).pk] == latest(waiting).pending_digest != ""

    high = submit(bob, nodes=2, priority="HIGH", name="urgent")  # suspends the low job
    victim = latest(low)
    assert victim.worker_status == WorkerStatus.SUSPENDING
    loaded = check()
    assert {r.attempt_id: r.suspending for r in loaded.snapshot.running}[victim.pk] is True
    assert {w.attempt_id: w.claim for w in loaded.snapshot.waiting}[latest(high).pk] is True
    lifecycle.attempt_mark_suspended(attempt_id=victim.pk)  # ranks release their nodes, the chain is requeued
    check()
    run(high)
    Attempt.objects.filter(pk=latest(high).pk).update(last_checkpoint_at=timezone.now())  # a bare update
    check()
    Chain.objects.filter(pk=high.pk).update(run_estimate_seconds=3600)  # a running job's estimate
    ends = {r.attempt_id: (r.started_at, r.expected_end) for r in check().snapshot.running}[latest(high).pk]
    assert ends[1] == ends[0] + 3600

    node = cluster.nodes[3]
    cluster_services.node_disable(actor=admin_user, node=node, reason="repair")
    check()
    experiment_services.experiment_stop(actor=alice, chain=low)  # the requeued attempt is canceled
    check()
    Chain.objects.filter(pk=waiting.pk).delete()  # a deleted job leaves with its attempts
    loaded = check()
    assert str(waiting.pk) not in {w.chain_id for w in loaded.snapshot.waiting}


def test_time_alone_ends_a_back_off_and_a_claim(cluster, submit):
    alice = UserFactory(username="alice")
    chain = waiting_job(submit, alice)
    attempt = latest(chain)
    now = timezone.now()
    Attempt.objects.filter(pk=attempt.pk).update(
        not_before=now + timedelta(seconds=30), suspend_for=attempt.pk, suspend_requested_at=now
    )
    CACHE.load(now)
    assert attempt.pk not in {w.attempt_id for w in check(now).snapshot.waiting}
    later = now + timedelta(seconds=31)
    assert attempt.pk in {w.attempt_id for w in check(later).snapshot.waiting}
    claims = {w.attempt_id: w.claim for w in check(later).snapshot.waiting}
    assert claims[attempt.pk] is True
    much_later = now + timedelta(seconds=snapshot.CLAIM_SECONDS + 1)
    assert {w.attempt_id: w.claim for w in check(much_later).snapshot.waiting}[attempt.pk] is False


def test_writes_the_snapshot_does_not_read_are_not_logged(cluster, submit):
    alice = UserFactory(username="alice")
    chain = waiting_job(submit, alice)
    before = SnapshotChange.objects.count()
    Attempt.objects.filter(chain=chain).update(pending_message="x", queue_position=7, failure_message="y")
    Chain.objects.filter(pk=chain.pk).update(notes="hello", starred=True)
    experiment_services.experiment_tag(user=alice, chain=chain, tag="a")
    assert SnapshotChange.objects.count() == before
    Chain.objects.filter(pk=chain.pk).update(node_count=2)
    assert list(SnapshotChange.objects.filter(id__gt=0).values_list("attempt_id", "chain_id"))[before:] == [
        (None, chain.pk)
    ]


def test_a_steady_pass_reads_only_what_changed_in_constant_queries(cluster, submit):
    users = [UserFactory(username=f"u{i}") for i in range(3)]
    chains = [submit(u, nodes=2, priority="LOW", name=f"j{i}-{k}") for i, u in enumerate(users) for k in range(3)]
    CACHE.load()
    with CaptureQueriesContext(connection) as idle:
        loaded = CACHE.load()
    assert (loaded.incremental, loaded.reloaded) == (True, 0)
    # (PostgreSQL: the token), the log, groups, nodes, containers, users, quotas (3), usage
    base = 10 if connection.vendor == "postgresql" else 9
    assert len(idle) == base, [q["sql"] for q in idle]
    Attempt.objects.filter(pk=latest(chains[0]).pk).update(priority=20)
    now = timezone.now()
    with CaptureQueriesContext(connection) as busy:
        loaded = CACHE.load(now)
    assert (loaded.incremental, loaded.reloaded) == (True, 1)
    assert len(busy) == base + 4  # plus the changed rows: scheduled, waiting, held nodes, suspended-for
    same(loaded, snapshot_load(now))


def test_safety_nets_read_everything(cluster, submit, monkeypatch):
    monkeypatch.setattr(snapshot, "FULL_RELOAD_PASSES", 30)
    alice = UserFactory(username="alice")
    waiting_job(submit, alice)
    CACHE.forget()
    assert not CACHE.load().incremental
    for _ in range(snapshot.FULL_RELOAD_PASSES - 1):
        assert CACHE.load().incremental
    assert not CACHE.load().incremental  # every N passes
    assert CACHE.load().incremental
    CACHE.forget()  # what a failed pass does
    assert not CACHE.load().incremental
    monkeypatch.setattr(snapshot, "MAX_CHANGED", 0)
    Attempt.objects.update(priority=20)
    assert not CACHE.load().incremental  # too much changed
    monkeypatch.setattr(snapshot, "FULL_RELOAD_SECONDS", 0.0)
    assert not CACHE.load().incremental  # this process's last pass is too old


def test_a_failed_pass_makes_the_next_one_read_everything(cluster, submit, monkeypatch):
    alice = UserFactory(username="alice")
    waiting_job(submit, alice)
    CACHE.load()

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(driver, "apply_plan", broken)
    with pytest.raises(RuntimeError):
        driver.run_pass()
    monkeypatch.undo()
    assert not CACHE.load().incremental


def test_a_busy_cache_is_not_shared(cluster, submit):
    alice = UserFactory(username="alice")
    waiting_job(submit, alice)
    CACHE.load()
    with CACHE._lock:  # another thread is loading
        loaded = CACHE.load()
    assert not loaded.incremental
    assert CACHE.load().incremental  # the kept rows were left alone


def test_old_log_rows_are_pruned(cluster, submit, monkeypatch):
    alice = UserFactory(username="alice")
    chain = waiting_job(submit, alice)
    cache = SnapshotCache()
    cache.load()
    assert SnapshotChange.objects.exists()
    monkeypatch.setattr(snapshot, "PRUNE_AFTER_SECONDS", 0.0)
    cache.load()
    assert not SnapshotChange.objects.exists()
    Attempt.objects.filter(chain=chain).update(priority=20)
    assert SnapshotChange.objects.count() == 1  # later rows are kept until read


@pytest.mark.postgres_only
def test_a_transaction_that_commits_after_a_pass_is_seen_by_the_next(cluster, submit, django_db_blocker):
    """A writer that began before a pass and commits after it (its log row numbered before
    rows the pass saw) is read by the next pass: the token names the transactions running."""
    if connection.vendor != "postgresql":
        pytest.skip("transaction ids are PostgreSQL's (SQLite has one writer at a time)")
    alice = UserFactory(username="alice")
    chain = waiting_job(submit, alice)
    attempt = latest(chain)
    before = attempt.priority
    CACHE.load()
    written, release, errors = threading.Event(), threading.Event(), []

    def writer() -> None:
        try:
            with transaction.atomic():
                Attempt.objects.filter(pk=attempt.pk).update(priority=40)
                written.set()
                assert release.wait(20)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert written.wait(20)
    # a later transaction (another row: the writer holds this one's lock) commits first
    Attempt.objects.exclude(pk=attempt.pk).filter(finished_at__isnull=True).update(last_checkpoint_at=timezone.now())
    loaded = CACHE.load()
    assert {w.attempt_id: w.priority for w in loaded.snapshot.waiting}[attempt.pk] == before  # not committed
    release.set()
    thread.join(20)
    assert errors == []
    loaded = check()
    assert {w.attempt_id: w.priority for w in loaded.snapshot.waiting}[attempt.pk] == 40
