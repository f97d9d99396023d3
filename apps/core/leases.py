"""Single-flight across workers: a lease row taken with a conditional UPDATE.

``run_single_flight("schedule", body)`` runs ``body`` in at most one worker at a time. A worker that
finds the lease taken sets ``rerun_requested`` so the holder runs once more before it lets go: an
event that arrives during a pass is not left waiting for the periodic safety net.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.models import Lease


def _holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def try_acquire(name: str, holder: str, ttl: float) -> bool:
    now = timezone.now()
    Lease.objects.get_or_create(name=name)
    with transaction.atomic():
        taken = (
            Lease.objects.filter(name=name)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__lte=now) | Q(holder=holder))
            .update(holder=holder, expires_at=now + timedelta(seconds=ttl), rerun_requested=False)
        )
    return taken == 1


def request_rerun(name: str) -> None:
    Lease.objects.filter(name=name).update(rerun_requested=True)


def release(name: str, holder: str) -> bool:
    """Let go of the lease. Returns True if a rerun was requested while it was held (and keeps it)."""
    with transaction.atomic():
        lease = Lease.objects.select_for_update().filter(name=name, holder=holder).first()
        if lease is None:
            return False
        if lease.rerun_requested:
            Lease.objects.filter(name=name, holder=holder).update(rerun_requested=False)
            return True
        Lease.objects.filter(name=name, holder=holder).update(holder="", expires_at=None)
        return False


def run_single_flight(name: str, body: Callable[[], object], ttl: float = 60.0, max_reruns: int = 5) -> bool:
    """Run ``body()`` under the lease, again while reruns are requested. False if another worker had it."""
    holder = _holder_id()
    if not try_acquire(name, holder, ttl):
        request_rerun(name)
        # The holder may have let go between our two steps without seeing the request: try once more.
        if not try_acquire(name, holder, ttl):
            return False
    try:
        for _ in range(max_reruns + 1):
            body()
            if not release(name, holder):
                return True
            try_acquire(name, holder, ttl)
        return True
    finally:
        Lease.objects.filter(name=name, holder=holder).update(holder="", expires_at=None)
