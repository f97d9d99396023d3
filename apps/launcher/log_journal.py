"""The launcher's ``LogJournal``: pod logs into the log store, exactly once, by the owner only.

A streaming backend (kubernetes) hands each batch of kubelet-stamped lines to ``append``. The
batch is written only while this process owns the cluster (``apps.launcher.ownership``: the
fence), and the store skips what it already holds (``LogStore.append_stamped``), so lines are never
written twice — not after a restart, a reconnect, nor while two processes briefly both follow a pod
during a hand-over. ``position`` is the stored cursor a follower resumes from, so nothing is lost
either. See docs/kubernetes.md, "Logs" and "One owner".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from apps.experiments.models import Attempt
from apps.logs.store import LogPosition, LogStamp, LogStore


class StoreLogJournal:
    """``LogJournal`` over a ``LogStore``, fenced by ``holds`` (thread-safe)."""

    def __init__(
        self, store: LogStore, *, holds: Callable[[], bool], chain_of: Callable[[int], str] | None = None
    ) -> None:
        self._store = store
        self._holds = holds
        self._chain_of = chain_of or _chain_of_attempt
        self._chains: dict[int, str] = {}
        self._lock = threading.Lock()
        self.lines_written = 0

    def _chain(self, attempt_id: int) -> str:
        with self._lock:
            chain = self._chains.get(attempt_id)
        if chain is None:
            chain = self._chain_of(attempt_id)
            with self._lock:
                self._chains[attempt_id] = chain
        return chain

    def accepting(self) -> bool:
        return self._holds()

    def position(self, attempt_id: int, rank: int) -> LogPosition | None:
        return self._store.stamp_position(self._chain(attempt_id), attempt_id, rank)

    def append(self, attempt_id: int, rank: int, lines: Sequence[tuple[LogStamp, str]]) -> int | None:
        if not self._holds():
            return None
        written = self._store.append_stamped(self._chain(attempt_id), attempt_id, rank, lines)
        with self._lock:
            self.lines_written += written
        return written


def _chain_of_attempt(attempt_id: int) -> str:
    return str(Attempt.objects.values_list("chain_id", flat=True).get(pk=attempt_id))
