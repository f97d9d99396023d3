"""Exactly one process owns the cluster: it watches, follows logs and reconciles.

Every process that can run a reconcile pass (``rota_worker``, django-q2 workers, the embedded
server) used to build its own backend: each watched every pod, opened a log stream per pod and
appended every line again. Now a process must *own the cluster* first, through the
``cluster-owner`` row of the lease table (``apps.core.leases``: one conditional ``UPDATE`` takes it
when it is free, expired, already ours, or held by a dead process of this host).

* ``claim()`` takes or renews the lease for this process (its holder id names host, pid, boot and
  process start, so a restarted process or a recycled pid is a different holder). The owner renews
  on every pass and, in long-running processes, from a keeper thread (``keep_alive``), so a long
  pass does not let it lapse. A process that finds it lost the lease closes its backend: its
  watches and log streams stop.
* ``holds()`` is the *fence*: true only until ``FENCE`` of the lease's time-to-live after the last
  successful renewal began, measured on this process's monotonic clock. The lease row expires at
  the full TTL (by the renewing process's wall clock), so a stalled owner stops writing log lines
  (``apps.launcher.log_journal``) before anyone else can take the lease, as long as the hosts'
  clocks agree within the remaining third (10 s by default; NTP does far better).
* A standby (a second ``rota_worker``, or the replacement pod of a dead one) takes over when the
  lease expires, at once if the owner was a process of its own host that no longer exists; a
  process that shuts down cleanly lets go at once (``release``).

Processes configured with ``ROTA_CLUSTER_OWNER=false`` (the django-q2 workers in the shipped
deploy files) never claim: their reconcile tasks are left to the owner, whose loop runs a pass
every ``ROTA_LAUNCHER_PASS_INTERVAL_SECONDS``. See docs/kubernetes.md, "One owner".
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections

from apps.core import leases
from apps.core.models import Lease
from apps.launcher.backends import reset_backend

logger = logging.getLogger(__name__)

OWNER_LEASE = "cluster-owner"
FENCE = 2 / 3  # of the TTL: how long after a renewal began this process may still write


class ClusterOwnership:
    """This process's claim on the ``cluster-owner`` lease (see the module docstring).

    ``holder`` and ``clock`` are for tests (two "processes" in one); ``on_lost`` runs, outside any
    lock, when a claim fails after this process had owned the cluster."""

    def __init__(
        self,
        *,
        holder: str | None = None,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._fixed_holder = holder
        self._holder: tuple[int, str] | None = None
        self._ttl = ttl
        self._clock = clock
        self._on_lost = on_lost
        self._lock = threading.Lock()
        # Claims of this process one at a time: two threads claiming at once (an event-triggered
        # pass and the loop's, right after a restart) would otherwise race the take-over from a
        # dead holder, and the loser would think the process lost the cluster and close its backend.
        self._claiming = threading.Lock()
        self._valid_until = 0.0
        self._owned = False
        self._keeper: threading.Thread | None = None

    @property
    def holder(self) -> str:
        if self._fixed_holder is not None:
            return self._fixed_holder
        pid = os.getpid()
        if self._holder is None or self._holder[0] != pid:  # recomputed after a fork
            base = leases._holder_id().split(":")
            base[4], base[5] = "owner", uuid.uuid4().hex[:8]
            self._holder = (pid, ":".join(base))
        return self._holder[1]

    @property
    def ttl(self) -> float:
        return float(self._ttl if self._ttl is not None else settings.ROTA_LAUNCHER["OWNER_LEASE_SECONDS"])

    def claim(self) -> bool:
        """Take or renew the lease. True while this process owns the cluster."""
        if not settings.ROTA_LAUNCHER["CLUSTER_OWNER"]:
            return False
        with self._claiming:
            return self._claim()

    def _claim(self) -> bool:
        began = self._clock()
        ttl = self.ttl
        try:
            taken = leases.try_acquire(OWNER_LEASE, self.holder, ttl)
        except Exception:
            # The database is unreachable: the lease cannot be renewed, and the fence runs out on its own.
            logger.warning("could not renew the cluster-owner lease", exc_info=True)
            return self.holds()
        with self._lock:
            was = self._owned
            self._owned = taken
            self._valid_until = began + ttl * FENCE if taken else 0.0
        if taken and not was:
            logger.info("this process now owns the cluster (%s)", self.holder)
        if not taken and was:
            logger.warning("this process no longer owns the cluster: closing its backend")
            if self._on_lost is not None:
                self._on_lost()
        return taken

    def holds(self) -> bool:
        """May this process act as the owner right now (the fence; see the module docstring)?"""
        with self._lock:
            return self._owned and self._clock() < self._valid_until

    def release(self) -> None:
        """Let go at once (clean shutdown): a standby need not wait for the lease to expire."""
        with self._lock:
            was, self._owned, self._valid_until = self._owned, False, 0.0
        if was:
            Lease.objects.filter(name=OWNER_LEASE, holder=self.holder).update(holder="", expires_at=None)

    def keep_alive(self, stop: threading.Event) -> threading.Thread:
        """Renew the lease every third of its TTL until ``stop`` is set, in a daemon thread (long
        passes then never let it lapse). Claims only while it owns or the lease is free."""

        def run() -> None:
            while not stop.wait(self.ttl / 3):
                try:
                    self.claim()
                finally:
                    close_old_connections()

        thread = threading.Thread(target=run, name="rota-cluster-owner", daemon=True)
        thread.start()
        self._keeper = thread
        return thread


def _close_backend() -> None:
    reset_backend()


ownership = ClusterOwnership(on_lost=_close_backend)
"""This process's claim (one per process)."""
