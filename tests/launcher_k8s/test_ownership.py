"""Defect 5: exactly one process owns the cluster (watch, log followers, reconcile) under the
``cluster-owner`` lease, and pod logs are written exactly once — across two owners racing, an
owner that dies and a standby that takes over, a restart, and a hand-over while both follow a pod."""

from __future__ import annotations

import datetime as dt
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.core.models import Lease
from apps.launcher import tasks
from apps.launcher.backends.kubernetes import KubernetesBackend
from apps.launcher.log_journal import StoreLogJournal
from apps.launcher.ownership import FENCE, OWNER_LEASE, ClusterOwnership
from apps.logs.store import LogPosition, LogStore, format_timestamp, split_timestamp
from tests.core.test_leases import dead_process, holder_of

from .conftest import StreamScript, wait_until
from .test_kubernetes_backend import MakeBackend, make_spec, running, set_pod_status, stamp

CHAIN = "c0ffee"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lease_row() -> tuple[str, Any]:
    row = Lease.objects.get(name=OWNER_LEASE)
    return row.holder, row.expires_at


# --------------------------------------------------------------------------------------------------
# The lease


@pytest.mark.django_db
def test_one_owner_at_a_time_and_it_renews() -> None:
    a = ClusterOwnership(holder="host-a:1:b:1:owner:a", ttl=30)
    b = ClusterOwnership(holder="host-b:1:b:1:owner:b", ttl=30)
    assert a.claim() is True
    assert b.claim() is False
    assert (a.holds(), b.holds()) == (True, False)
    first_expiry = lease_row()[1]
    assert a.claim() is True  # a renewal
    assert lease_row()[0] == "host-a:1:b:1:owner:a"
    assert lease_row()[1] >= first_expiry
    assert b.claim() is False


@pytest.mark.django_db(transaction=True)
def test_two_processes_racing_for_a_free_cluster_one_wins() -> None:
    owners = [ClusterOwnership(holder=f"host-{i}:1:b:1:owner:{i}", ttl=30) for i in range(2)]
    barrier = threading.Barrier(2)
    won: dict[int, bool] = {}
    Lease.objects.create(name=OWNER_LEASE)

    def race(i: int) -> None:
        from django.db import connection

        try:
            barrier.wait(10)
            won[i] = owners[i].claim()
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(won.values()) == [False, True]
    winner = next(i for i, w in won.items() if w)
    assert lease_row()[0] == f"host-{winner}:1:b:1:owner:{winner}"
    assert [o.holds() for o in owners] == [i == winner for i in range(2)]


@pytest.mark.django_db
def test_a_stalled_owner_stops_writing_before_a_standby_can_take_over() -> None:
    clock = Clock()
    lost: list[str] = []
    a = ClusterOwnership(holder="host-a:1:b:1:owner:a", ttl=30, clock=clock, on_lost=lambda: lost.append("a"))
    b = ClusterOwnership(holder="host-b:1:b:1:owner:b", ttl=30)
    assert a.claim() is True
    clock.now += 30 * FENCE - 0.5
    assert a.holds() is True
    clock.now += 1  # past the fence: a writes nothing more, while its lease row still stands
    assert a.holds() is False
    assert b.claim() is False
    # The lease runs out (a stalled for its whole TTL): the standby takes over...
    Lease.objects.filter(name=OWNER_LEASE).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert b.claim() is True
    # ...and the old owner, waking up, finds it lost the cluster and closes its backend.
    assert a.claim() is False
    assert lost == ["a"]
    assert lease_row()[0] == "host-b:1:b:1:owner:b"


@pytest.mark.django_db
def test_a_standby_on_the_same_host_takes_over_at_once_when_the_owner_died() -> None:
    pid, ticks = dead_process()
    Lease.objects.create(name=OWNER_LEASE, holder=holder_of(pid, ticks), expires_at=timezone.now() + timedelta(hours=1))
    standby = ClusterOwnership(ttl=30)
    assert standby.claim() is True
    assert lease_row()[0] == standby.holder


@pytest.mark.django_db
def test_a_clean_shutdown_lets_go_at_once() -> None:
    a = ClusterOwnership(holder="host-a:1:b:1:owner:a", ttl=30)
    b = ClusterOwnership(holder="host-b:1:b:1:owner:b", ttl=30)
    assert a.claim() is True
    a.release()
    assert a.holds() is False
    assert lease_row() == ("", None)
    assert b.claim() is True


@pytest.mark.django_db
def test_a_process_configured_not_to_own_never_claims(settings: Any) -> None:
    settings.ROTA_LAUNCHER = {**settings.ROTA_LAUNCHER, "CLUSTER_OWNER": False}
    worker = ClusterOwnership(ttl=30)
    assert worker.claim() is False
    assert not Lease.objects.filter(name=OWNER_LEASE).exclude(holder="").exists()


@pytest.mark.django_db
def test_reconcile_task_does_nothing_where_another_process_owns_the_cluster(monkeypatch: Any) -> None:
    Lease.objects.create(
        name=OWNER_LEASE, holder="elsewhere:1:b:1:owner:x", expires_at=timezone.now() + timedelta(hours=1)
    )
    passes: list[int] = []
    monkeypatch.setattr(tasks, "reconcile", lambda: passes.append(1))
    assert tasks.reconcile_pass() is False
    assert passes == []
    Lease.objects.filter(name=OWNER_LEASE).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert tasks.reconcile_pass() is True
    assert passes == [1]


# --------------------------------------------------------------------------------------------------
# The store: exactly-once appends by source stamp


def test_stamped_appends_skip_what_the_file_already_holds(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    t0, t1, t2 = (1_900_000_000, 0), (1_900_000_000, 5_000_000), (1_900_000_001, 123_456_789)
    assert store.stamp_position(CHAIN, 1, 0) is None
    assert store.append_stamped(CHAIN, 1, 0, [(t0, "a"), (t1, "b"), (t1, "c")]) == 3
    assert store.stamp_position(CHAIN, 1, 0) == LogPosition(t1, 2)
    # Delivered again, overlapping, with one new line at the same stamp and one later: only those.
    assert store.append_stamped(CHAIN, 1, 0, [(t0, "a"), (t1, "b"), (t1, "c"), (t1, "d"), (t2, "e")]) == 2
    assert store.append_stamped(CHAIN, 1, 0, [(t1, "d"), (t2, "e")]) == 0
    lines = store.path(CHAIN, 1, 0).read_text().splitlines()
    assert [split_timestamp(line)[1] for line in lines] == ["a", "b", "c", "d", "e"]
    # The kubelet's stamp, kept to the microsecond, is the stored line's timestamp.
    assert split_timestamp(lines[4])[0] == format_timestamp(1_900_000_001.123456)
    assert store.stamp_position(CHAIN, 1, 0) == LogPosition((1_900_000_001, 123_456_000), 1)


def test_stamped_lines_are_capped_and_stay_one_line(tmp_path: Path) -> None:
    store = LogStore(tmp_path, line_max_bytes=16)
    store.append_stamped(CHAIN, 1, 0, [((1_900_000_000, 0), "x" * 20), ((1_900_000_000, 0), "two\nlines")])
    lines = [split_timestamp(line)[1] for line in store.path(CHAIN, 1, 0).read_text().splitlines()]
    assert lines == ["x" * 16 + " …[truncated 4 bytes]", "two lines"]


# --------------------------------------------------------------------------------------------------
# Following logs through the journal, against kmock


class Fence:
    """``holds()`` of a journal, set by the test; counts the calls it answered ``False``."""

    def __init__(self, holds: bool = True) -> None:
        self.value = holds
        self.refusals = 0

    def __call__(self) -> bool:
        if not self.value:
            self.refusals += 1
        return self.value


def stored(store: LogStore) -> list[str]:
    path = store.path(CHAIN, 7, 0)
    if not path.exists():
        return []
    return [split_timestamp(line)[1] for line in path.read_text().splitlines()]


def follower_backend(make_backend: MakeBackend, store: LogStore, fence: Fence) -> KubernetesBackend:
    journal = StoreLogJournal(store, holds=fence, chain_of=lambda attempt_id: CHAIN)
    return make_backend(log_journal=journal)


def test_an_owner_that_dies_is_replaced_without_duplicated_or_lost_lines(
    tmp_path: Path, make_backend: MakeBackend, core: Any, pod_logs: StreamScript
) -> None:
    store = LogStore(tmp_path)
    base = dt.datetime.now(dt.UTC).replace(microsecond=0)
    t = [stamp(base, ms) for ms in (0, 10, 20, 30, 40, 50)]

    fence_a = Fence()
    a = follower_backend(make_backend, store, fence_a)
    a.start(make_spec(ranks=1))
    set_pod_status(core, "rota-7-0", running())
    a.observe(7)
    wait_until(lambda: pod_logs.opened == 1, what="a's log stream")
    pod_logs.push(f"{t[0]} one\n{t[1]} two\n{t[1]} two again\n".encode())
    wait_until(lambda: stored(store) == ["one", "two", "two again"], what="a's lines")

    # a stalls past its fence (its lease is about to be taken): it must not write any more...
    fence_a.value = False
    pod_logs.push(f"{t[2]} three\n".encode())
    wait_until(lambda: fence_a.refusals >= 1, what="a's journal to refuse its line")
    assert stored(store) == ["one", "two", "two again"]
    # ...while b, the new owner, resumes from the store: asks only for the recent past, and the
    # kubelet's repeat of what a wrote is skipped.
    fence_b = Fence()
    b = follower_backend(make_backend, store, fence_b)
    b.observe(7)
    wait_until(lambda: pod_logs.opened == 2, what="b's log stream")
    assert "sinceSeconds" in pod_logs.requests[1].params
    pod_logs.push(f"{t[0]} one\n{t[1]} two\n{t[1]} two again\n{t[2]} three\n{t[3]} four\n".encode())
    wait_until(lambda: stored(store) == ["one", "two", "two again", "three", "four"], what="b's lines")
    assert pod_logs.opened == 2  # a, fenced, opens nothing more
    a.close()

    # b restarts (a rollout): its successor's follower starts from the stored cursor too.
    b.close()
    c = follower_backend(make_backend, store, Fence())
    c.observe(7)
    wait_until(lambda: pod_logs.opened == 3, what="c's log stream")
    pod_logs.push(f"{t[0]} one\n{t[1]} two\n{t[1]} two again\n{t[2]} three\n{t[3]} four\n{t[4]} five\n".encode())
    wait_until(lambda: stored(store)[-1:] == ["five"], what="c's line")
    assert stored(store) == ["one", "two", "two again", "three", "four", "five"]


def test_two_followers_of_one_pod_during_a_hand_over_write_each_line_once(
    tmp_path: Path, make_backend: MakeBackend, core: Any, pod_logs: StreamScript
) -> None:
    store = LogStore(tmp_path)
    base = dt.datetime.now(dt.UTC).replace(microsecond=0)
    t = [stamp(base, ms) for ms in (0, 10, 20)]
    a = follower_backend(make_backend, store, Fence())
    a.start(make_spec(ranks=1))
    set_pod_status(core, "rota-7-0", running())
    a.observe(7)
    wait_until(lambda: pod_logs.opened == 1, what="a's log stream")
    b = follower_backend(make_backend, store, Fence())
    b.observe(7)
    wait_until(lambda: pod_logs.opened == 2, what="b's log stream")
    lines = f"{t[0]} x\n{t[1]} y\n{t[1]} y\n{t[2]} z\n".encode()
    pod_logs.push(lines)  # to b's stream
    wait_until(lambda: stored(store) == ["x", "y", "y", "z"], what="b's lines")
    pod_logs.end()
    # a's stream (the older session) delivers the same lines: nothing more is written.
    pod_logs._server.call(lambda: pod_logs._sessions[0].put_nowait(lines))
    wait_until(lambda: a._followers[(7, 0)].delivered == 4, what="a to hand its lines to the journal")
    assert stored(store) == ["x", "y", "y", "z"]


@pytest.mark.django_db(transaction=True)
def test_threads_of_one_process_claiming_at_once_after_a_crash_never_think_they_lost_it() -> None:
    """Right after a restart an event-triggered pass and the loop's pass claim together. Unserialised,
    the one that lost the race to take over from the dead holder concluded the process had lost
    the cluster and closed its backend under the other (seen by bench/recovery.py)."""
    pid, ticks = dead_process()
    Lease.objects.update_or_create(
        name=OWNER_LEASE, defaults={"holder": holder_of(pid, ticks), "expires_at": timezone.now() + timedelta(hours=1)}
    )
    lost: list[str] = []
    owner = ClusterOwnership(holder=holder_of(4242, 7, host="restarted"), ttl=30, on_lost=lambda: lost.append("lost"))
    start = threading.Barrier(6)
    results: list[bool] = []

    def claim() -> None:
        from django.db import connection

        start.wait(10)
        try:
            results.append(owner.claim())
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [True] * 6
    assert lost == []
    assert lease_row()[0] == owner.holder
