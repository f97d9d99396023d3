"""django-q2 task interfaces of the launcher. Idempotent; safe to run from several workers."""

from __future__ import annotations

from apps.core.health import record_pass
from apps.core.leases import run_single_flight

LEASE = "launcher"


def reconcile_pass() -> bool:
    """Run a reconcile pass unless another worker is running one (it will then run once more)."""
    from apps.launcher.reconcile import reconcile

    ran = run_single_flight(LEASE, reconcile, ttl=120.0)
    if ran:
        record_pass("launcher")  # the worker's heartbeat for /readyz
    return ran


CONTAINER_LEASE = "containers"


def container_reconcile_pass() -> bool:
    """Run a pass over development containers unless another worker is running one."""
    from apps.launcher.container_reconcile import reconcile_containers

    return run_single_flight(CONTAINER_LEASE, reconcile_containers, ttl=120.0)
