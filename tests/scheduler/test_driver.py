"""The scheduler driver against the database: load, plan, apply, explain; races and single flight."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.cluster import services as cluster_services
from apps.core.leases import run_single_flight
from apps.experiments import lifecycle
from apps.experiments.choices import ChainStatus, RankStatus, SuspendReason, WorkerStatus
from apps.experiments.models import Attempt, Chain, Rank
from apps.scheduler import driver
from apps.scheduler.models import UserUsage
from tests.factories import UserFactory


@pytest.fixture
def fast_policy(settings):
    settings.ROTA_SCHEDULER = {**settings.ROTA_SCHEDULER, "MIN_RUN_SECONDS": 0.0}


def latest(chain: Chain) -> Attempt:
    chain.refresh_from_db()
    return Attempt.objects.get(pk=chain.latest_attempt_id)


def run(chain: Chain) -> Attempt:
    attempt = latest(chain)
    for rank in attempt.ranks.all():
        lifecycle.rank_update(attempt_id=attempt.pk, rank=rank.rank, status=RankStatus.RUNNING)
    lifecycle.attempt_mark_running(attempt_id=attempt.pk)
    return latest(chain)


def held_nodes() -> list[str]:
    return list(Rank.objects.filter(holds_node=True).values_list("node__name", flat=True))


def test_higher_priority_job_suspends_lower_then_starts(cluster, submit, fast_policy):
    alice, bob = UserFactory(username="a1"), UserFactory(username="b1")
    low = submit(alice, nodes=4, priority="LOW")
    low_attempt = run(low)
    high = submit(bob, nodes=2, priority="HIGH")
    low_attempt.refresh_from_db()
    assert low_attempt.worker_status == WorkerStatus.SUSPENDING
    assert low_attempt.suspend_reason == SuspendReason.PREEMPTED
    assert low_attempt.suspend_for == latest(high).pk
    waiting = latest(high)
    assert waiting.worker_status == WorkerStatus.QUEUED
    assert waiting.pending_code == "waiting_for_suspend"
    assert waiting.queue_position == 1
    assert [h["chain_id"] for h in waiting.pending_holders] == [low.pk]
    # The launcher reports the victim gone: the preemptor starts, the victim's chain is requeued.
    lifecycle.attempt_mark_suspended(attempt_id=low_attempt.pk)
    assert latest(high).worker_status == WorkerStatus.STARTING
    requeued = latest(low)
    assert (requeued.index, requeued.worker_status) == (1, WorkerStatus.QUEUED)
    low.refresh_from_db()
    assert low.status == ChainStatus.SUSPENDED and not low.held
    # 2 nodes are left: the requeued 4-node job waits, and says why.
    assert requeued.pending_code in {"priority", "fragmentation", "waiting_for_suspend"}
    assert requeued.pending_message
    assert len(held_nodes()) == len(set(held_nodes())) == 2


def test_min_run_time_protects_a_fresh_victim(cluster, submit):
    alice, bob = UserFactory(username="a2"), UserFactory(username="b2")
    low = submit(alice, nodes=4, priority="LOW")
    run(low)
    high = submit(bob, nodes=1, priority="HIGH")
    assert latest(low).worker_status == WorkerStatus.RUNNING
    waiting = latest(high)
    assert waiting.pending_code == "min_runtime"
    assert "minimum" in waiting.pending_message.lower() or "min" in waiting.pending_message.lower()


def test_quota_keeps_a_job_waiting_with_a_reason(cluster, submit):
    carol = UserFactory(username="c3")
    cluster.set_quota(carol, 10, 1)
    first = submit(carol, nodes=1, priority="NORMAL")
    second = submit(carol, nodes=1, priority="NORMAL")
    assert latest(first).worker_status == WorkerStatus.STARTING
    waiting = latest(second)
    assert waiting.worker_status == WorkerStatus.QUEUED
    assert waiting.pending_code == "quota"
    assert [h["chain_id"] for h in waiting.pending_holders] == [first.pk]


def test_infeasible_job_is_marked_not_left_waiting_silently(cluster, submit, task_log):
    dave = UserFactory(username="d4")
    with task_log.paused():  # submitted before its quota shrank (it would be refused at submit)
        chain = submit(dave, nodes=3, priority="NORMAL")
        for level in (0, 10, 20, 30, 40, 50):
            cluster.set_quota(dave, level, 2)
    driver.run_pass()
    attempt = latest(chain)
    assert attempt.infeasible
    assert attempt.pending_code == "quota_ceiling"
    assert "3" in attempt.pending_message


def test_disabled_node_is_never_scheduled(cluster, submit, admin_user):
    cluster_services.node_disable(actor=admin_user, node=cluster.nodes[0], reason="bad GPU")
    erin = UserFactory(username="e5")
    chains = [submit(erin, nodes=1, priority="LOW") for _ in range(4)]
    states = [latest(c).worker_status for c in chains]
    assert states.count(WorkerStatus.STARTING) == 3
    assert "n0" not in held_nodes()
    cluster_services.node_enable(actor=admin_user, node=cluster.nodes[0])
    assert [latest(c).worker_status for c in chains].count(WorkerStatus.STARTING) == 4


def test_finished_rank_frees_its_node(cluster, submit):
    frank = UserFactory(username="f6")
    chain = submit(frank, nodes=2, priority="LOW")
    attempt = run(chain)
    lifecycle.rank_update(attempt_id=attempt.pk, rank=1, status=RankStatus.SUCCEEDED, exit_code=0)
    assert len(held_nodes()) == 1
    other = submit(frank, nodes=3, priority="LOW")
    assert latest(other).worker_status == WorkerStatus.STARTING


def test_time_sharing_between_two_users_at_equal_priority(cluster, submit, settings):
    settings.ROTA_SCHEDULER = {
        **settings.ROTA_SCHEDULER,
        "MIN_RUN_SECONDS": 0.0,
        "TIME_SLICE_SECONDS": 600.0,
        "TIMESHARE_WAIT_SECONDS": 60.0,
    }
    gina, hank = UserFactory(username="g7"), UserFactory(username="h8")
    runner = submit(gina, nodes=4, priority="NORMAL")
    attempt = run(runner)
    waiter = submit(hank, nodes=4, priority="NORMAL")
    assert latest(runner).worker_status == WorkerStatus.RUNNING  # slice not used up yet
    assert latest(waiter).pending_code == "time_slice"
    # Twenty minutes later: the runner used its slice, the waiter waited past the threshold.
    later = timezone.now() + timedelta(minutes=20)
    Attempt.objects.filter(pk=attempt.pk).update(started_at=timezone.now() - timedelta(minutes=20))
    Attempt.objects.filter(pk=latest(waiter).pk).update(created_at=timezone.now() - timedelta(minutes=20))
    driver.run_pass(now=later)
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.suspend_reason) == (WorkerStatus.SUSPENDING, SuspendReason.TIME_SHARE)


def test_same_user_same_priority_never_preempts(cluster, submit, fast_policy):
    ivy = UserFactory(username="i9")
    first = submit(ivy, nodes=4, priority="NORMAL")
    run(first)
    submit(ivy, nodes=1, priority="NORMAL")
    assert latest(first).worker_status == WorkerStatus.RUNNING


def test_above_normal_ages_to_normal(cluster, submit, settings):
    settings.ROTA_SCHEDULER = {**settings.ROTA_SCHEDULER, "ABOVE_NORMAL_AGING_SECONDS": 60.0}
    jack = UserFactory(username="j10")
    chain = submit(jack, nodes=1, priority="ABOVE_NORMAL")
    attempt = run(chain)
    Attempt.objects.filter(pk=attempt.pk).update(started_at=timezone.now() - timedelta(minutes=5))
    result = driver.run_pass()
    assert result.demoted == [attempt.pk]
    attempt.refresh_from_db()
    assert (attempt.effective_priority, attempt.quota_priority, attempt.priority) == (10, 20, 20)


def test_explanations_are_rewritten_only_when_they_change(cluster, submit, task_log):
    kim = UserFactory(username="k11")
    with task_log.paused():
        for _ in range(3):
            submit(kim, nodes=1, priority="NORMAL")
    cluster.set_quota(kim, 10, 0)  # a pass follows: they can never start, and say so
    assert driver.run_pass().explained == 0  # nothing changed since the last pass


def test_fair_share_usage_accumulates_for_holders(cluster, submit):
    lee = UserFactory(username="l12")
    run(submit(lee, nodes=2, priority="LOW"))
    driver.run_pass(now=timezone.now() + timedelta(seconds=30))
    driver.run_pass(now=timezone.now() + timedelta(seconds=60))
    usage = UserUsage.objects.get(user=lee)
    assert 50 <= usage.value <= 130  # ~2 nodes × ~30-60 s, decayed slightly


def test_snapshot_is_loaded_in_constant_queries(cluster, submit, task_log):
    mia = UserFactory(username="m13")

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            driver.load_snapshot()
        return len(ctx.captured_queries)

    with task_log.paused():
        submit(mia, nodes=1, priority="LOW")
    cluster.set_quota(mia, 0, 0)  # it can never start
    few = count()
    for _ in range(10):
        submit(UserFactory(), nodes=1, priority="LOW")
    assert count() == few


def test_a_concurrent_pass_cannot_double_book(cluster, submit, task_log):
    """Even two passes that both planned the same start: the second start is refused."""
    nina = UserFactory(username="n14")
    task_log.allowed.clear()  # no automatic passes: this test plans by hand
    chain = submit(nina, nodes=4, priority="LOW")
    loaded_a = driver.load_snapshot()
    loaded_b = driver.load_snapshot()
    from apps.scheduler import policy

    plan_a, plan_b = policy.plan(loaded_a.snapshot), policy.plan(loaded_b.snapshot)
    assert plan_a.starts and plan_a.starts == plan_b.starts
    from django.db import transaction

    with transaction.atomic():
        first = driver.apply_plan(loaded_a, plan_a, timezone.now())
    with transaction.atomic():
        second = driver.apply_plan(loaded_b, plan_b, timezone.now())
    assert first.started == [latest(chain).pk]
    assert second.started == [] and second.skipped_starts == first.started
    assert len(held_nodes()) == 4


def test_node_held_once_is_a_database_constraint(cluster, submit):
    from django.db import IntegrityError, transaction

    olga = UserFactory(username="o15")
    chain = submit(olga, nodes=1, priority="LOW")
    node_id = Rank.objects.get(attempt=latest(chain)).node_id
    other = submit(olga, nodes=1, priority="LOW")
    with pytest.raises(IntegrityError), transaction.atomic():
        Rank.objects.create(attempt=latest(other), rank=5, node_id=node_id, holds_node=True)


def test_single_flight_lease_runs_one_body_at_a_time(transactional_db):
    inside = threading.Event()
    release = threading.Event()
    runs: list[str] = []

    def slow() -> None:
        runs.append("slow")
        inside.set()
        release.wait(10)

    thread = threading.Thread(target=run_single_flight, args=("test-lease", slow))
    thread.start()
    assert inside.wait(10)
    # A second worker does not run concurrently; it asks the holder to run once more.
    assert run_single_flight("test-lease", lambda: runs.append("second")) is False
    release.set()
    thread.join(10)
    assert runs == ["slow", "slow"]  # the holder reran for the request
    connection.close()


@pytest.mark.postgres_only
def test_racing_passes_on_postgres_never_double_book(cluster, submit, django_db_blocker):
    """Forced concurrent passes (no lease) from two threads, many rounds: never a double booking."""
    if connection.vendor != "postgresql":
        pytest.skip("row-level concurrency needs PostgreSQL (the embedded SQLite serialises writers)")
    users = [UserFactory(username=f"race{i}") for i in range(4)]
    for user in users:
        cluster.set_quota(user, 0, 4)
    errors: list[BaseException] = []
    for round_no in range(15):
        chains = [
            submit(u, nodes=1 + (round_no + i) % 3, priority="LOW", name=f"r{round_no}-{i}")
            for i, u in enumerate(users)
        ]
        barrier = threading.Barrier(2)

        def racer(barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait(5)
                driver.run_pass()
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=racer) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        held = held_nodes()
        assert len(held) == len(set(held)) <= 4
        for chain in chains:  # finish this round's jobs
            attempt = latest(chain)
            if attempt.worker_status == WorkerStatus.QUEUED:
                lifecycle.attempt_mark_finished(attempt_id=attempt.pk, status=WorkerStatus.CANCELED)
            else:
                lifecycle.attempt_mark_finished(attempt_id=attempt.pk, status=WorkerStatus.SUCCEEDED)
    assert errors == []


def test_quota_lowered_below_use_suspends_the_excess(cluster, submit):
    nia = UserFactory(username="n14")
    attempt = run(submit(nia, nodes=2, priority="NORMAL"))
    cluster.set_quota(nia, 10, 1)
    driver.run_pass()
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.suspend_reason, attempt.suspend_for) == (
        WorkerStatus.SUSPENDING,
        SuspendReason.OVER_QUOTA,
        None,
    )


def test_a_requeued_above_normal_chain_runs_at_its_aged_level(cluster, submit, settings):
    settings.ROTA_SCHEDULER = {**settings.ROTA_SCHEDULER, "MIN_RUN_SECONDS": 0.0}
    oli = UserFactory(username="o15")
    chain = submit(oli, nodes=1, priority="ABOVE_NORMAL")
    first = run(chain)
    Attempt.objects.filter(pk=first.pk).update(started_at=timezone.now() - timedelta(minutes=40))
    lifecycle.attempt_request_suspend(attempt_id=first.pk, reason=SuspendReason.USER)
    lifecycle.attempt_mark_suspended(attempt_id=first.pk)
    Chain.objects.filter(pk=chain.pk).update(held=False)
    driver.run_pass()
    second = latest(chain)
    assert second.index == 1
    assert second.worker_status == WorkerStatus.STARTING
    # charged to its ABOVE_NORMAL quota, running (and preemptible) at NORMAL
    assert (second.priority, second.quota_priority, second.effective_priority) == (20, 20, 10)


def test_the_job_a_suspension_was_for_has_a_claim(cluster, submit, fast_policy):
    pia, quin = UserFactory(username="p16"), UserFactory(username="q17")
    low = run(submit(pia, nodes=4, priority="LOW"))
    high = submit(quin, nodes=2, priority="HIGH")
    low.refresh_from_db()
    assert low.suspend_for == latest(high).pk
    waiting = {w.attempt_id: w for w in driver.load_snapshot().snapshot.waiting}
    assert waiting[latest(high).pk].claim is True


def test_a_stale_victim_is_asked_to_checkpoint_and_suspended_right_after_it_reports(cluster, submit):
    from tests.experiments.test_runtime_priority import job_client

    ivy, jon = UserFactory(username="i9"), UserFactory(username="j9")
    low = submit(ivy, nodes=4, priority="LOW")
    attempt = run(low)
    now = timezone.now()
    Attempt.objects.filter(pk=attempt.pk).update(
        started_at=now - timedelta(hours=1), last_checkpoint_at=now - timedelta(minutes=10)
    )
    waiter = submit(jon, nodes=2, priority="NORMAL")
    Attempt.objects.filter(pk=latest(waiter).pk).update(created_at=now - timedelta(minutes=20))
    result = driver.run_pass(now=now)
    assert result.checkpoint_requested == [attempt.pk]
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.RUNNING
    assert attempt.checkpoint_requested_at == now
    assert latest(waiter).pending_code == "checkpoint"
    assert "It has been asked to save one now." in latest(waiter).pending_message
    # the job sees the request in its status; a second pass does not move the request's time
    client = job_client(low)
    assert client.get("/api/v1/job/status/").json()["checkpoint_requested"] is True
    assert driver.run_pass(now=now + timedelta(seconds=2)).checkpoint_requested == []
    attempt.refresh_from_db()
    assert attempt.checkpoint_requested_at == now
    # it saves and reports one: the request is answered and the next pass suspends it for the waiter
    assert client.post("/api/v1/job/checkpoint/").status_code == 200
    attempt.refresh_from_db()
    assert attempt.checkpoint_requested_at is None
    assert client.get("/api/v1/job/status/").json()["checkpoint_requested"] is False
    driver.run_pass()
    attempt.refresh_from_db()
    assert (attempt.worker_status, attempt.suspend_reason) == (WorkerStatus.SUSPENDING, SuspendReason.PREEMPTED)
    assert attempt.suspend_for == latest(waiter).pk


@pytest.mark.parametrize("estimated", [True, False])
def test_among_starving_jobs_the_smaller_estimated_footprint_starts_first(cluster, submit, settings, estimated):
    """The owner's run-time estimate reaches the policy: of two jobs waiting past STARVATION_SECONDS for the
    same two nodes, the one with the smaller nodes x estimate starts first; without estimates, the older one."""
    # no reservation for the longest-waiting job here: only the starving order decides
    settings.ROTA_SCHEDULER = {**settings.ROTA_SCHEDULER, "RESERVATION_WAIT_SECONDS": 30 * 3600.0}
    filler = submit(UserFactory(username="f40"), nodes=4, priority="HIGH", name="filler")
    attempt = run(filler)
    big = submit(UserFactory(username="a40"), nodes=2, priority="NORMAL", run_estimate_seconds=20 * 3600)
    small = submit(
        UserFactory(username="b40"), nodes=2, priority="NORMAL", run_estimate_seconds=3600 if estimated else None
    )
    starving = timezone.now() - timedelta(hours=7)  # past the default STARVATION_SECONDS (6 h)
    Attempt.objects.filter(pk__in=[latest(big).pk, latest(small).pk]).update(created_at=starving)
    for rank in (2, 3):
        lifecycle.rank_update(attempt_id=attempt.pk, rank=rank, status=RankStatus.SUCCEEDED, exit_code=0)
    driver.run_pass()
    started, waits = (small, big) if estimated else (big, small)
    assert latest(started).worker_status == WorkerStatus.STARTING
    assert latest(waits).worker_status == WorkerStatus.QUEUED


def test_a_waiting_job_counts_what_its_chain_already_ran_against_its_estimate(cluster, submit, fast_policy):
    owner = UserFactory(username="c40")
    chain = submit(owner, nodes=4, priority="LOW", run_estimate_seconds=3 * 3600)
    first = run(chain)
    submit(UserFactory(username="d40"), nodes=4, priority="HIGH", name="urgent")  # suspends it
    lifecycle.attempt_mark_suspended(attempt_id=first.pk)
    Attempt.objects.filter(pk=first.pk).update(
        started_at=timezone.now() - timedelta(hours=1), finished_at=timezone.now()
    )
    waiting = {w.chain_id: w for w in driver.load_snapshot().snapshot.waiting}[str(chain.pk)]
    assert waiting.run_estimate == pytest.approx(2 * 3600, abs=5)
    Attempt.objects.filter(pk=first.pk).update(started_at=timezone.now() - timedelta(hours=4))  # ran past it
    assert {w.chain_id: w for w in driver.load_snapshot().snapshot.waiting}[str(chain.pk)].run_estimate is None
