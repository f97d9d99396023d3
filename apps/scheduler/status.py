"""What the last scheduling pass saw and decided, for the admins' scheduler overview.

The pass itself keeps no state between runs (it is level-triggered); the few things an admin asks
"what does the scheduler see now" about that are not stored on rows — when the last pass ran, how
long it took, and which nodes it holds back for a long-waiting job (the anti-starvation
reservation, ``policy.Reservation``) — are written to the shared cache after each pass, so every web
replica reads what the worker's last pass decided. Best effort: bookkeeping never breaks a pass.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

from django.core.cache import cache

SUMMARY_KEY = "rota:scheduler:last-pass"


@dataclass(frozen=True)
class ReservationSeen:
    """Nodes of ``group`` the last pass held back for the long-waiting attempt ``attempt_id``."""

    group: str
    attempt_id: int
    chain_id: int | None
    free_nodes: int  # idle nodes nobody behind it may start on
    freeing_nodes: int  # nodes of suspending jobs that will go to it


@dataclass(frozen=True)
class PassSummary:
    at: float  # epoch seconds, when the pass ended
    seconds: float  # how long it took, from loading the snapshot to commit
    plan_seconds: float  # of which the pure ``plan()``
    running: int  # attempts holding nodes when it looked
    waiting: int  # attempts in the queue when it looked
    started: int
    suspended: int
    reservations: tuple[ReservationSeen, ...]


def record_pass_summary(summary: PassSummary) -> None:
    with contextlib.suppress(Exception):
        cache.set(SUMMARY_KEY, asdict(summary), timeout=None)


def last_pass_summary() -> PassSummary | None:
    """The summary of the last completed pass, or None if none was recorded (or the cache is down)."""
    try:
        raw: Any = cache.get(SUMMARY_KEY)
    except Exception:
        return None
    if not isinstance(raw, dict):
        return None
    try:
        reservations = tuple(ReservationSeen(**r) for r in raw.get("reservations", ()))
        return PassSummary(**{**raw, "reservations": reservations})
    except TypeError:  # written by another version of this class
        return None
