"""Single-flight leases: a lease whose holder process died is taken over at once, not after it
expires (after a kill -9 and restart, passes — and so submit → running — do not stall)."""

from __future__ import annotations

import subprocess
import sys
import threading
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
