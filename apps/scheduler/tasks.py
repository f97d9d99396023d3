"""django-q2 task interfaces of the scheduler. Idempotent; safe to run from several workers."""

from __future__ import annotations

import time

from apps.core.health import record_pass
from apps.core.leases import run_single_flight
from apps.scheduler.driver import run_pass

LEASE = "scheduler"


def schedule_pass() -> bool:
    """Run a scheduling pass unless another worker is running one (it will then run once more).

    Returns False if another worker held the lease.
    """
    took: list[float] = []

    def timed() -> None:
        began = time.perf_counter()
        run_pass()
        took.append(time.perf_counter() - began)

    ran = run_single_flight(LEASE, timed, ttl=60.0)
    if ran:
        record_pass("scheduler", took[-1] if took else None)  # heartbeat for /readyz; duration for /metrics
    return ran
