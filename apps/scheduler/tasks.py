"""django-q2 task interfaces of the scheduler. Idempotent; safe to run from several workers."""

from __future__ import annotations

from apps.core.health import record_pass
from apps.core.leases import run_single_flight

LEASE = "scheduler"


def schedule_pass() -> bool:
    """Run a scheduling pass unless another worker is running one (it will then run once more).

    Returns False if another worker held the lease.
    """
    from apps.scheduler.driver import run_pass

    ran = run_single_flight(LEASE, run_pass, ttl=60.0)
    if ran:
        record_pass("scheduler")  # the worker's heartbeat for /readyz
    return ran
