"""Single-flight across workers: a lease row taken with a conditional UPDATE.

``run_single_flight("schedule", body)`` runs ``body`` in at most one worker at a time. A worker that
finds the lease taken sets ``rerun_requested`` so the holder runs once more before it lets go: an
event that arrives during a pass is not left waiting for the periodic safety net.

A holder that dies (kill -9, OOM, a crash) cannot let go, and its lease would be honoured until it
expires (up to two minutes of no scheduling after a restart). So a holder names its process —
``host:pid:boot:start-ticks:thread:nonce``, the start time from ``/proc/<pid>/stat`` and the kernel's
boot id, so a reused pid or a reboot never matches — and a worker that finds the lease taken by a
process *of its own host* that no longer exists takes it over at once (conditionally on that same
holder, so two workers cannot both take it). Holders on other hosts cannot be checked: for them the
lease is short (``LIVENESS_SECONDS``) and a live holder keeps it by renewing it from a keeper thread
every ``LIVENESS_SECONDS / 3`` while its body runs, so a holder that died elsewhere blocks the others
for at most ``LIVENESS_SECONDS``, however long the pass it was running may take.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.models import Lease

logger = logging.getLogger(__name__)


_BOOT_ID: str | None = None


def _boot_id() -> str:
    """The first 8 characters of the kernel's boot id ('' where unavailable)."""
    global _BOOT_ID
    if _BOOT_ID is None:
        try:
            _BOOT_ID = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
        except OSError:
            _BOOT_ID = ""
    return _BOOT_ID


def _process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if there is no such live process.
    (The same reading as ``apps.launcher.rank_supervisor.proc_stat``, which stays stdlib-only.)"""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    rest = raw[raw.rfind(b")") + 2 :].split()  # ``comm`` may contain spaces and parentheses
    try:
        state, ticks = rest[0].decode(), int(rest[19])
    except (IndexError, ValueError):
        return None
    return None if state in {"Z", "X"} else ticks


def _host() -> str:
    return socket.gethostname()[:48]


def _holder_id() -> str:
    pid = os.getpid()
    ticks = _process_start_ticks(pid)
    started = "" if ticks is None else str(ticks)
    return f"{_host()}:{pid}:{_boot_id()}:{started}:{threading.get_ident()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(holder: str) -> bool:
    """True if ``holder`` names a process of this host that no longer exists (see the module docstring).
    Unknown formats, other hosts and anything this host cannot check count as alive."""
    parts = holder.split(":")
    if len(parts) != 6 or parts[0] != _host() or not parts[1].isdigit() or not parts[3].isdigit():
        return False
    if not parts[2] or parts[2] != _boot_id():
        return bool(parts[2]) and bool(_boot_id())  # held before this machine rebooted
    return _process_start_ticks(int(parts[1])) != int(parts[3])


def try_acquire(name: str, holder: str, ttl: float) -> bool:
    """Take the lease if it is free, expired, already ours, or held by a dead process of this host."""
    now = timezone.now()
    Lease.objects.get_or_create(name=name)
    with transaction.atomic():
        taken = (
            Lease.objects.filter(name=name)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__lte=now) | Q(holder=holder))
            .update(holder=holder, expires_at=now + timedelta(seconds=ttl), rerun_requested=False)
        )
    if taken == 1:
        return True
    current = Lease.objects.filter(name=name).values_list("holder", flat=True).first()
    if not current or not holder_is_dead(current):
        return False
    # Conditional on the dead holder: of two workers that both saw it dead, one takes it.
    with transaction.atomic():
        taken = Lease.objects.filter(name=name, holder=current).update(
            holder=holder, expires_at=now + timedelta(seconds=ttl), rerun_requested=False
        )
    if taken == 1:
        logger.warning("lease %s taken over from %s, a process that no longer exists", name, current)
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


LIVENESS_SECONDS = 15.0
"""How long a lease outlives a holder that stopped renewing it (died on another host, or froze)."""


class _Keeper:
    """Renews ``holder``'s lease every ``LIVENESS_SECONDS / 3`` until stopped (a daemon thread with
    its own database connection, closed when it ends)."""

    def __init__(self, name: str, holder: str, seconds: float) -> None:
        self.name, self.holder, self.seconds = name, holder, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease keeper {name}", daemon=True)

    def __enter__(self) -> _Keeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.seconds / 3):
                try:
                    Lease.objects.filter(name=self.name, holder=self.holder).update(
                        expires_at=timezone.now() + timedelta(seconds=self.seconds)
                    )
                except Exception:  # the database is away: the next renewal tries again
                    logger.warning("could not renew lease %s", self.name, exc_info=True)
        finally:
            connection.close()


def run_single_flight(name: str, body: Callable[[], object], ttl: float = 60.0, max_reruns: int = 5) -> bool:
    """Run ``body()`` under the lease, again while reruns are requested. False if another worker had it.

    ``ttl`` bounds how long the lease outlives a holder that stopped renewing it; it is capped at
    ``LIVENESS_SECONDS``, and a keeper thread renews it while ``body`` runs (module docstring)."""
    seconds = min(ttl, LIVENESS_SECONDS)
    holder = _holder_id()
    if not try_acquire(name, holder, seconds):
        request_rerun(name)
        # The holder may have let go between our two steps without seeing the request: try once more.
        if not try_acquire(name, holder, seconds):
            return False
    try:
        with _Keeper(name, holder, seconds):
            for _ in range(max_reruns + 1):
                body()
                if not release(name, holder):
                    return True
                try_acquire(name, holder, seconds)
        return True
    finally:
        Lease.objects.filter(name=name, holder=holder).update(holder="", expires_at=None)
