"""The one answer to "what may this user do to this chain now": ``chain_actions(user=, chain=)``.

Two questions make it. *Who*: the chain's owner and platform admins (root, ops, task admins) may
act on it; everyone else may do nothing (a team-mate who sees a shared chain only reads it).
*When*: each action asks the chain's latest attempt for a state change, so whether it is possible
follows from the transitions table (``choices.TRANSITIONS``), computed once below into
``ACTIONS_BY_STATUS`` (docs/architecture.md prints the table):

- stop: the attempt is not final (a waiting one is canceled; asking a stopping one again is a no-op);
- stop as succeeded or failed: the attempt can reach ``stopping`` or is there (it ran);
- suspend: the attempt can reach ``suspending`` or is there (a scheduler's suspend becomes a
  person's, so the job is held after), or it waits and is not held yet (it is held where it is);
- resume: the chain is held, or its attempt ended stopped, failed or canceled (a new attempt is
  queued); a succeeded job is submitted again instead;
- change priority: the attempt is not final; move to another node group: the attempt is queued;
- edit (tags, star, notes, sharing): always.

The services refuse exactly what this refuses (``services._require_action``), the job page, the
list rows and the API (``actions`` of each job) offer exactly what it allows. It reads only the
chain's own columns (``owner_id``, ``status``) and the user's groups (cached on the user), so a
list computes it for every row without a query per row. Limits that are not about state — the
priority's once-per-10-s rate, a name already taken by an unfinished job on resume, the node
group's size and the quota ceiling on a move — stay checks of the services.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.accounts.models import User
from apps.experiments.choices import (
    QUEUED_CHAIN_STATUSES,
    TRANSITIONS,
    ChainAction,
    ChainStatus,
    WorkerStatus,
)
from apps.experiments.models import Chain

#: attempts in these final states are retried by ``resume`` (a new attempt carries the whole-life state)
RETRIED_STATUSES = frozenset({WorkerStatus.STOPPED, WorkerStatus.FAILED, WorkerStatus.CANCELED})


def latest_worker_status(status: str) -> str:
    """The worker status of the latest attempt of a chain in ``status`` (``lifecycle.chain_status_for``
    the other way round: waiting, suspended and held chains have a queued attempt)."""
    return WorkerStatus.QUEUED if status in QUEUED_CHAIN_STATUSES else WorkerStatus(status).value


def _may_reach(worker_status: str, target: str) -> bool:
    """The attempt is in ``target`` or may move there (``choices.TRANSITIONS``)."""
    return worker_status == target or target in TRANSITIONS.get(worker_status, frozenset())


def _unfinished(worker_status: str) -> bool:
    """The attempt may still move at all: final states have no transitions."""
    return worker_status in TRANSITIONS


#: each action, as a rule over the latest attempt's worker status and whether the chain is held
_RULES: dict[ChainAction, Callable[[str, bool], bool]] = {
    ChainAction.STOP: lambda ws, held: _unfinished(ws),
    ChainAction.MARK_OUTCOME: lambda ws, held: _may_reach(ws, WorkerStatus.STOPPING),
    ChainAction.SUSPEND: lambda ws, held: (
        _may_reach(ws, WorkerStatus.SUSPENDING) or (ws == WorkerStatus.QUEUED and not held)
    ),
    ChainAction.RESUME: lambda ws, held: (ws == WorkerStatus.QUEUED and held) or ws in RETRIED_STATUSES,
    ChainAction.SET_PRIORITY: lambda ws, held: _unfinished(ws),
    ChainAction.MOVE_GROUP: lambda ws, held: ws == WorkerStatus.QUEUED,
    ChainAction.EDIT: lambda ws, held: True,
}

#: chain status → what its owner (or a platform admin) may do to it
ACTIONS_BY_STATUS: dict[str, frozenset[ChainAction]] = {
    status: frozenset(
        action for action, rule in _RULES.items() if rule(latest_worker_status(status), status == ChainStatus.HELD)
    )
    for status in ChainStatus.values
}

NO_ACTIONS: frozenset[ChainAction] = frozenset()


def may_act(*, user: User, chain: Chain) -> bool:
    """The owner or a platform admin: the people who may act on a chain at all."""
    return chain.owner_id == user.pk or user.is_platform_admin


def chain_actions(*, user: User, chain: Chain) -> frozenset[ChainAction]:
    """What ``user`` may do to ``chain`` in its current status (empty for anyone but its owner and
    platform admins). No query: ``chain.status`` and ``owner_id`` are the chain's own columns and
    the user's groups are cached on the user object."""
    if not may_act(user=user, chain=chain):
        return NO_ACTIONS
    return ACTIONS_BY_STATUS[chain.status]
