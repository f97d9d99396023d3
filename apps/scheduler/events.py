"""Typed realtime events of the scheduler. Unknown fields are rejected at construction.

Sent to the ``admins`` group (``portal.realtime.ADMINS_GROUP``) after commit: the admin pages that
show the queue and the nodes (/monitor/scheduler/, /monitor/nodes/) refresh on it. Owners learn
about their own jobs from the experiments' events; this one carries counts only.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class SchedulerPassed:
    """A scheduling pass started or asked to suspend jobs (passes that change neither say nothing)."""

    type: str = field(default="scheduler.pass", init=False)
    started: int
    suspended: int
