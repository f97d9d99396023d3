"""Can a job, as submitted, ever start? One answer for the submit service and the scheduler.

A job can never start when its group does not exist or has fewer nodes than it asks for, when its
priority is not a level, when its environment is unknown or not permitted, or when its owner's quota
ceiling in the group (at its level; at every level for AUTO) is below its size. ``experiment_submit``
refuses such a job, and the scheduler's pure policy (``apps/scheduler/policy.py``) reports one that
became infeasible later, both with the message written here, which names the levels that would fit.

This module is plain Python and imports nothing from Django or the project, because the pure policy
imports it (downward: experiments is below the scheduler in docs/architecture.md). Its ``Priority``
is HAI's levels as a plain ``IntEnum``; ``apps.core.priorities.Priority`` holds the same levels as
Django choices (``tests/scheduler/test_priorities.py`` checks that they agree).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


class Priority(enum.IntEnum):
    """HAI's priority levels; AUTO asks for the highest level the user still has quota for."""

    EXTREME_HIGH = 50
    VERY_HIGH = 40
    HIGH = 30
    ABOVE_NORMAL = 20
    NORMAL = 10
    UNDER_NORMAL = 8
    BELOW_NORMAL = 5
    LOW = 0
    AUTO = -1


#: The real levels, highest first (the order AUTO tries them in).
LEVELS: tuple[int, ...] = tuple(sorted((p.value for p in Priority if p is not Priority.AUTO), reverse=True))


class InfeasibleCode(enum.StrEnum):
    """Why a job can never start; the scheduler's ``ReasonCode`` has a member of the same value for each."""

    GROUP_TOO_SMALL = "GROUP_TOO_SMALL"
    QUOTA_CEILING = "QUOTA_CEILING"
    ENVIRONMENT = "ENVIRONMENT"
    INFEASIBLE = "INFEASIBLE"


class JobAsk(Protocol):
    """What a job asks for; the policy's ``Waiting`` has these fields, the submit service passes an ``Ask``."""

    @property
    def user(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def node_count(self) -> int: ...
    @property
    def priority(self) -> int: ...
    @property
    def environment_ok(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Ask:
    user: str
    group: str
    node_count: int
    priority: int
    environment_ok: bool = True


_NAMES: dict[int, str] = {p.value: p.name for p in Priority}
_LEVEL_SET = frozenset(LEVELS)
_AUTO = int(Priority.AUTO)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def infeasibility(
    w: JobAsk, group_size: int | None, quotas: Mapping[tuple[str, int], int]
) -> tuple[InfeasibleCode, str] | None:
    """Why ``w`` can never start as submitted, or None when it could (given room).

    ``group_size`` is the number of nodes registered in ``w.group`` (None: no such group) and
    ``quotas`` the user's resolved quotas, (group, level) -> nodes.
    """
    n = w.node_count
    if group_size is None:
        return InfeasibleCode.GROUP_TOO_SMALL, f"Group '{w.group}' does not exist: no node is registered in it."
    if n < 1:
        return InfeasibleCode.INFEASIBLE, f"A job needs at least 1 node; this one asks for {n}."
    if n > group_size:
        return (
            InfeasibleCode.GROUP_TOO_SMALL,
            f"Needs {_plural(n, 'node')} but group '{w.group}' has only {_plural(group_size, 'node')} registered.",
        )
    if w.priority != _AUTO and w.priority not in _LEVEL_SET:
        return InfeasibleCode.INFEASIBLE, f"Unknown priority {w.priority}."
    if not w.environment_ok:
        return (
            InfeasibleCode.ENVIRONMENT,
            f"Its environment (image) is unknown or {w.user} is not permitted to use it.",
        )
    if w.priority == _AUTO:
        top = max(quotas.get((w.group, lvl), 0) for lvl in LEVELS)
        if top >= n:
            return None
        return (
            InfeasibleCode.QUOTA_CEILING,
            f"Needs {_plural(n, 'node')} but {w.user}'s largest quota in '{w.group}' at any priority is "
            f"{_plural(top, 'node')}.",
        )
    q = quotas.get((w.group, w.priority), 0)
    if q >= n:
        return None
    enough = [
        f"{_NAMES[lvl]} ({quotas.get((w.group, lvl), 0)})" for lvl in LEVELS if quotas.get((w.group, lvl), 0) >= n
    ]
    hint = f" Levels with enough quota: {', '.join(enough)}." if enough else ""
    return (
        InfeasibleCode.QUOTA_CEILING,
        f"Needs {_plural(n, 'node')} but {w.user}'s quota in '{w.group}' at {_NAMES[w.priority]} "
        f"is {_plural(q, 'node')}, so it can never start at this level.{hint}",
    )
