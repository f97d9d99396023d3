"""django-q2 task interfaces of the launcher. Idempotent; safe to run from several workers."""

from __future__ import annotations

import threading
import time

from apps.core.health import record_pass
from apps.core.leases import run_single_flight
from apps.launcher.backends import reset_backend
from apps.launcher.container_reconcile import reconcile_containers
from apps.launcher.ownership import ownership
from apps.launcher.reconcile import reconcile

LEASE = "launcher"


def reconcile_pass() -> bool:
    """Run a reconcile pass if this process owns the cluster (``apps.launcher.ownership``; taking
    the lease when it is free) and no other thread of it is running one (that one then runs once
    more). A process that does not own the cluster does nothing: the owner's loop runs the pass."""
    if not ownership.claim():
        return False
    took: list[float] = []

    def timed() -> None:
        began = time.perf_counter()
        reconcile()
        took.append(time.perf_counter() - began)

    ran = run_single_flight(LEASE, timed, ttl=120.0)
    if ran:
        record_pass("launcher", took[-1] if took else None)  # heartbeat for /readyz; duration for /metrics
    return ran


def keep_ownership(stop: threading.Event) -> None:
    """Long-running processes (``rota_worker``): renew the cluster-owner lease from a thread until
    ``stop`` is set, so a long reconcile pass never lets it lapse."""
    ownership.keep_alive(stop)


def release_ownership() -> None:
    """Clean shutdown: close the backend (watches, log streams), then let go of the lease."""
    reset_backend()
    ownership.release()


CONTAINER_LEASE = "containers"


def container_reconcile_pass() -> bool:
    """Run a pass over development containers if this process owns the cluster (as for jobs: the
    owner's backend holds the runs) and no other thread of it is running one."""
    if not ownership.claim():
        return False
    return run_single_flight(CONTAINER_LEASE, reconcile_containers, ttl=120.0)
