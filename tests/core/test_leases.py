"""Single-flight leases: a lease whose holder process died is taken over at once, not after it
expires (after a kill -9 and restart, passes — and so submit → running — do not stall)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core import leases
from apps.core.models import Lease

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def hold(name: str, holder: str) -> None:
    Lease.objects.update_or_create(name=name, defaults={"holder": holder, "expires_at": timezone.now() + HOUR})


def holder_of(pid: int, ticks: int | None, host: str | None = None) -> str:
    return f"{host or leases._host()}:{pid}:{leases._boot_id()}:{ticks}:1234:abcd1234"


def dead_process() -> tuple[int, int]:
    """The pid and start time of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    ticks = leases._process_start_ticks(child.pid)
    assert ticks is not None
    child.kill()
    child.wait()
    return child.pid, ticks


def test_a_lease_held_by_a_dead_process_of_this_host_is_taken_over_at_once():
    pid, ticks = dead_process()
    hold("schedule", holder_of(pid, ticks))
    ran: list[str] = []
    assert leases.run_single_flight("schedule", lambda: ran.append("pass")) is True
    assert ran == ["pass"]
    assert Lease.objects.get(name="schedule").holder == ""  # let go afterwards


def test_a_reused_pid_does_not_keep_a_dead_holders_lease():
    import os

    me = os.getpid()
    ticks = leases._process_start_ticks(me)
    assert ticks is not None
    hold("schedule", holder_of(me, ticks - 1))  # our pid, but another process's start time
    assert leases.try_acquire("schedule", "new-holder", 60) is True
    assert Lease.objects.get(name="schedule").holder == "new-holder"


def test_a_live_holder_keeps_its_lease():
    import os

    me = os.getpid()
    held = holder_of(me, leases._process_start_ticks(me))
    hold("schedule", held)
    assert leases.try_acquire("schedule", "other", 60) is False
    assert Lease.objects.get(name="schedule").holder == held


@pytest.mark.parametrize("holder", ["elsewhere:1:abcd:5:1:x", "old-format:host:1:2", "", "garbage"])
def test_holders_this_host_cannot_check_are_honoured_until_expiry(holder):
    hold("schedule", holder or "x")
    assert leases.try_acquire("schedule", "other", 60) is False
    Lease.objects.filter(name="schedule").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases.try_acquire("schedule", "other", 60) is True


def test_a_holder_from_before_a_reboot_is_dead():
    if not leases._boot_id():
        pytest.skip("no kernel boot id here")
    import os

    held = f"{leases._host()}:{os.getpid()}:00000000:{leases._process_start_ticks(os.getpid())}:1:abcd1234"
    assert leases.holder_is_dead(held) is True


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_a_dead_holders_lease_take_it_once():
    pid, ticks = dead_process()
    hold("race", holder_of(pid, ticks))
    barrier = threading.Barrier(2)
    won: list[bool] = []

    def worker(name: str) -> None:
        from django.db import connection

        try:
            barrier.wait(10)
            won.append(leases.try_acquire("race", name, 60))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(won) == [False, True]


@pytest.mark.django_db(transaction=True)
def test_a_live_holder_renews_its_short_lease_while_its_pass_runs(monkeypatch):
    """Cross-host holders cannot be checked for life: the lease is short and a live holder keeps it
    by renewing it, so a long pass is never taken over while its holder lives."""
    monkeypatch.setattr(leases, "LIVENESS_SECONDS", 0.6)
    inside, finish = threading.Event(), threading.Event()
    seen: list = []

    def long_pass() -> None:
        inside.set()
        assert finish.wait(10)

    runner = threading.Thread(target=lambda: seen.append(leases.run_single_flight("schedule", long_pass)))
    runner.start()
    try:
        assert inside.wait(10)
        first = Lease.objects.get(name="schedule")
        assert first.expires_at <= timezone.now() + timedelta(seconds=0.6)  # short, not the 60 s ttl
        deadline = timezone.now() + timedelta(seconds=10)
        while Lease.objects.get(name="schedule").expires_at <= first.expires_at:
            assert timezone.now() < deadline, "the keeper never renewed the lease"
            time.sleep(0.02)
        # Renewed past its first expiry: another worker (on any host) still finds it held.
        while timezone.now() <= first.expires_at + timedelta(seconds=0.1):
            time.sleep(0.02)
        assert leases.try_acquire("schedule", "elsewhere:1:x:1:1:x", 0.6) is False
    finally:
        finish.set()
        runner.join(10)
    assert seen == [True]
    assert Lease.objects.get(name="schedule").holder == ""


def test_a_holder_on_another_host_that_stopped_renewing_is_taken_over_within_the_liveness_window(monkeypatch):
    """A holder that died on another host cannot be seen dead: its lease runs out within
    ``LIVENESS_SECONDS`` (not the pass's ttl), then the next worker takes it."""
    elsewhere = holder_of(4242, 1, host="another-host")
    now = timezone.now()
    Lease.objects.update_or_create(
        name="schedule", defaults={"holder": elsewhere, "expires_at": now + timedelta(seconds=leases.LIVENESS_SECONDS)}
    )
    assert leases.try_acquire("schedule", "me", 60) is False  # alive as far as anyone can tell
    Lease.objects.filter(name="schedule").update(expires_at=now - timedelta(seconds=1))  # it stopped renewing
    ran: list[str] = []
    assert leases.run_single_flight("schedule", lambda: ran.append("pass"), ttl=60.0) is True
    assert ran == ["pass"]


def test_the_lease_a_pass_takes_is_capped_at_the_liveness_window():
    expiries = []
    leases.run_single_flight(
        "schedule", lambda: expiries.append(Lease.objects.get(name="schedule").expires_at), ttl=3600.0
    )
    assert expiries[0] <= timezone.now() + timedelta(seconds=leases.LIVENESS_SECONDS)
