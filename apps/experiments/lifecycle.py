"""Attempt state changes: the only code that moves an attempt from one state to another.

Every change is a conditional update from the states it may come from (``choices.TRANSITIONS``),
so a finished attempt never changes, ``running`` never goes back to ``queued``, and two workers
doing the same thing at once cannot both succeed: the loser's update matches no row and it returns
``False``. Events are sent and passes enqueued after commit.

Callers: user services (``services.py``), the scheduler driver (start, suspend requests) and the
launcher's reconcile loop (running, finished, suspended). The job runtime API (whole-life state,
checkpoints, suspend acknowledgement) is at the bottom.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.services import tokens_revoke_for_attempt
from apps.core.passes import RECONCILE, SCHEDULE
from apps.core.tasks import enqueue_on_commit
from apps.experiments import events
from apps.experiments.choices import (
    FINAL_WORKER_STATUSES,
    TRANSITIONS,
    ChainStatus,
    QueueStatus,
    RankStatus,
    StopReason,
    SuspendReason,
    SuspendState,
    WorkerStatus,
)
from apps.experiments.locks import lock_chain, lock_chain_of
from apps.experiments.models import Attempt, Chain, Rank
from portal.realtime import chain_group, send_event_on_commit, team_group, user_group

_CHAIN_STATUS: dict[str, str] = {
    WorkerStatus.STARTING: ChainStatus.STARTING,
    WorkerStatus.RUNNING: ChainStatus.RUNNING,
    WorkerStatus.SUSPENDING: ChainStatus.SUSPENDING,
    WorkerStatus.STOPPING: ChainStatus.STOPPING,
    WorkerStatus.SUCCEEDED: ChainStatus.SUCCEEDED,
    WorkerStatus.FAILED: ChainStatus.FAILED,
    WorkerStatus.STOPPED: ChainStatus.STOPPED,
    WorkerStatus.CANCELED: ChainStatus.CANCELED,
}


def sources_of(target: str) -> list[str]:
    """Worker statuses from which ``target`` may be reached."""
    return [source for source, targets in TRANSITIONS.items() if target in targets]


def transition(*, attempt_id: int, target: str, only_from: list[str] | None = None, **fields: Any) -> bool:
    """Move one attempt to ``target`` if it is in a state that allows it. True if it moved.

    Locks the chain first (``locks.lock_chain_of``)."""
    lock_chain_of(attempt_id)
    allowed = sources_of(target)
    if only_from is not None:
        allowed = [s for s in allowed if s in only_from]
    if target in FINAL_WORKER_STATUSES:
        fields.setdefault("queue_status", QueueStatus.FINISHED)
        fields.setdefault("finished_at", timezone.now())
    return Attempt.objects.filter(pk=attempt_id, worker_status__in=allowed).update(worker_status=target, **fields) == 1


def chain_status_for(chain: Chain, attempt: Attempt) -> str:
    if attempt.worker_status == WorkerStatus.QUEUED:
        if chain.held:
            return ChainStatus.HELD
        return ChainStatus.WAITING if attempt.index == 0 else ChainStatus.SUSPENDED
    return _CHAIN_STATUS[attempt.worker_status]


def sync_chain(*, chain_id: int) -> Chain:
    """Recompute the chain's denormalised status from its latest attempt; emit if it changed."""
    chain = lock_chain(chain_id, with_latest_attempt=True)
    attempt = chain.latest_attempt
    assert attempt is not None
    status = chain_status_for(chain, attempt)
    finished = attempt.worker_status in FINAL_WORKER_STATUSES and attempt.worker_status != WorkerStatus.SUSPENDED
    changes: dict[str, Any] = {}
    if chain.status != status:
        changes["status"] = status
    if chain.finished != finished:
        changes["finished"] = finished
        changes["finished_at"] = attempt.finished_at if finished else None
    if changes:
        Chain.objects.filter(pk=chain.pk).update(**changes)
        for key, value in changes.items():
            setattr(chain, key, value)
    emit_chain_status(chain=chain, attempt=attempt)
    return chain


def chain_audience(chain: Chain) -> list[str]:
    """Who hears about a chain: its owner, its subscribers and, when shared, the owner's team.

    The team is the owner's team now (as in ``selectors.chains_visible_to``): one query, and
    only for a shared chain."""
    groups = [user_group(chain.owner_id), chain_group(chain.pk)]
    if chain.shared_with_team:
        team_id = shared_chain_teams([chain.pk]).get(chain.pk)
        if team_id is not None:
            groups.append(team_group(team_id))
    return groups


def shared_chain_teams(chain_ids: Iterable[int]) -> dict[int, int]:
    """Chain id → its owner's team id, for those of ``chain_ids`` shared with a team (one query)."""
    ids = list(chain_ids)
    if not ids:
        return {}
    rows = Chain.objects.filter(pk__in=ids, shared_with_team=True, owner__team__isnull=False)
    return dict(rows.values_list("pk", "owner__team_id"))


def emit_chain_status(*, chain: Chain, attempt: Attempt) -> None:
    send_event_on_commit(
        chain_audience(chain),
        events.ChainStatusChanged(
            chain_id=chain.pk,
            attempt_id=attempt.pk,
            status=chain.status,
            worker_status=attempt.worker_status,
            restart_count=chain.restart_count,
            owner_id=chain.owner_id,
        ),
    )


def _release_ranks(attempt_id: int, status: str | None = None) -> None:
    now = timezone.now()
    Rank.objects.filter(attempt_id=attempt_id, holds_node=True).update(holds_node=False, finished_at=now)
    if status is not None:
        Rank.objects.filter(attempt_id=attempt_id, status__in=[RankStatus.PENDING, RankStatus.RUNNING]).update(
            status=status, finished_at=now
        )


def _revoke_job_tokens(attempt_id: int) -> None:
    tokens_revoke_for_attempt(attempt_id=attempt_id)


RETRY_BACKOFF_CODE = "retry_backoff"
"""``pending_code`` of an attempt waiting out the back-off after its predecessor could not start."""

HELD_CODE = "held"
HELD_MESSAGE = "Suspended by a person: it waits until it is resumed."


def hold_fields() -> dict[str, Any]:
    """The explanation a held attempt shows (the scheduler skips held chains)."""
    return {
        "pending_code": HELD_CODE,
        "pending_message": HELD_MESSAGE,
        "queue_position": None,
        "pending_holders": [],
        "pending_digest": "",
        "infeasible": False,
    }


def requeue(*, chain: Chain, previous: Attempt, held: bool = False) -> Attempt:
    """Queue the next attempt of ``chain`` after ``previous`` ended, carrying whole-life state."""
    state = Attempt.objects.filter(pk=previous.pk).values_list("whole_life_state", flat=True).get()
    nxt = Attempt.objects.create(
        chain=chain,
        index=previous.index + 1,
        priority=chain.priority,
        whole_life_state=state,
        watchdog_seconds=chain.watchdog_seconds,
        **(hold_fields() if held else {}),
    )
    Chain.objects.filter(pk=chain.pk).update(
        latest_attempt=nxt, restart_count=nxt.index, whole_life_state=state, held=held
    )
    chain.latest_attempt = nxt
    chain.restart_count = nxt.index
    chain.held = held
    return nxt


# --- scheduler ----------------------------------------------------------------------------------


def attempt_start(*, attempt_id: int, priority: int, quota_priority: int, node_ids: list[int]) -> bool:
    """QUEUED → STARTING on ``node_ids`` (index = rank). False if it was no longer queued.

    Call inside a transaction (savepoint): the partial unique constraint on held nodes raises
    ``IntegrityError`` if a node is already held, and the caller rolls this start back.
    """
    now = timezone.now()
    moved = transition(
        attempt_id=attempt_id,
        target=WorkerStatus.STARTING,
        only_from=[WorkerStatus.QUEUED],
        queue_status=QueueStatus.SCHEDULED,
        effective_priority=priority,
        quota_priority=quota_priority,
        scheduled_at=now,
        pending_code="",
        pending_message="",
        queue_position=None,
        pending_holders=[],
        pending_digest="",
        infeasible=False,
    )
    if not moved:
        return False
    Rank.objects.bulk_create(
        [Rank(attempt_id=attempt_id, rank=i, node_id=node_id, holds_node=True) for i, node_id in enumerate(node_ids)]
    )
    return True


def attempt_request_suspend(
    *, attempt_id: int, reason: str, beneficiary: int | None = None, now: datetime | None = None
) -> bool:
    """Ask a starting or running attempt to suspend (the launcher delivers the notice)."""
    moved = transition(
        attempt_id=attempt_id,
        target=WorkerStatus.SUSPENDING,
        only_from=[WorkerStatus.STARTING, WorkerStatus.RUNNING],
        suspend_reason=reason,
        suspend_state=SuspendState.REQUESTED,
        suspend_requested_at=now or timezone.now(),
        suspend_for=beneficiary,
    )
    if moved:
        enqueue_on_commit(RECONCILE)
    return moved


# --- launcher -----------------------------------------------------------------------------------


@transaction.atomic
def attempt_mark_running(*, attempt_id: int) -> bool:
    """STARTING → RUNNING once every rank runs."""
    now = timezone.now()
    moved = transition(
        attempt_id=attempt_id, target=WorkerStatus.RUNNING, only_from=[WorkerStatus.STARTING], started_at=now
    )
    if moved:
        attempt = Attempt.objects.select_related("chain").get(pk=attempt_id)
        nodes = list(Rank.objects.filter(attempt_id=attempt_id).order_by("rank").values_list("node__name", flat=True))
        send_event_on_commit(
            chain_audience(attempt.chain),
            events.AttemptStarted(chain_id=attempt.chain_id, attempt_id=attempt_id, nodes=nodes),
        )
        sync_chain(chain_id=attempt.chain_id)
    return moved


def rank_update(
    *,
    attempt_id: int,
    rank: int,
    status: str,
    exit_code: int | None = None,
    message: str = "",
    started_at: datetime | None = None,
) -> bool:
    """Record what the backend sees of one rank. A finished rank frees its node."""
    final = status in {RankStatus.SUCCEEDED, RankStatus.FAILED, RankStatus.KILLED}
    qs = Rank.objects.filter(attempt_id=attempt_id, rank=rank).exclude(
        status__in=[RankStatus.SUCCEEDED, RankStatus.FAILED, RankStatus.KILLED]
    )
    fields: dict[str, Any] = {"status": status, "message": message[:255]}
    if exit_code is not None:
        fields["exit_code"] = exit_code
    if status == RankStatus.RUNNING:
        fields["started_at"] = started_at or timezone.now()
        qs = qs.exclude(status=RankStatus.RUNNING)
    if final:
        fields["finished_at"] = timezone.now()
        fields["holds_node"] = False
    changed = qs.update(**fields) == 1
    if changed and final:
        enqueue_on_commit(SCHEDULE)  # a finished rank's node is free for others
    return changed


@transaction.atomic
def attempt_mark_suspended(*, attempt_id: int, reason: str | None = None) -> Attempt | None:
    """The attempt's processes are gone after a suspend: finish it and queue the next attempt.

    Also used when the launcher gives up on an attempt for the platform's reasons (a node became
    unusable, ranks could not start in time): ``reason`` then says which. Returns the new attempt.
    """
    attempt = Attempt.objects.select_related("chain").get(pk=attempt_id)
    fields: dict[str, Any] = {}
    if reason is not None:
        fields["suspend_reason"] = reason
    if not transition(attempt_id=attempt_id, target=WorkerStatus.SUSPENDED, **fields):
        return None
    _release_ranks(attempt_id, RankStatus.KILLED)
    _revoke_job_tokens(attempt_id)
    chain = lock_chain(attempt.chain_id)
    suspend_reason = reason or attempt.suspend_reason
    # A person's suspend holds the chain until they resume it; the scheduler's requeues at once.
    held = suspend_reason in {SuspendReason.USER, SuspendReason.ADMIN}
    nxt = requeue(chain=chain, previous=attempt, held=held)
    send_event_on_commit(
        chain_audience(chain),
        events.AttemptSuspended(chain_id=chain.pk, attempt_id=attempt_id, reason=suspend_reason),
    )
    sync_chain(chain_id=chain.pk)
    enqueue_on_commit(SCHEDULE)
    return nxt


@transaction.atomic
def attempt_mark_finished(
    *, attempt_id: int, status: str, stop_reason: str = "", exit_code: int | None = None, message: str = ""
) -> bool:
    """The attempt ended for good (succeeded, failed or stopped): the chain is finished."""
    if status not in {WorkerStatus.SUCCEEDED, WorkerStatus.FAILED, WorkerStatus.STOPPED, WorkerStatus.CANCELED}:
        raise ValueError(f"not a final status for a chain: {status}")
    attempt = Attempt.objects.select_related("chain").get(pk=attempt_id)
    fields: dict[str, Any] = {
        "exit_code": exit_code,
        "failure_message": message[:500],
        "pending_code": "",
        "pending_message": "",
        "queue_position": None,
        "pending_holders": [],
        "pending_digest": "",
    }
    fields["stop_reason"] = (
        stop_reason or attempt.stop_reason or (StopReason.COMPLETED if status == WorkerStatus.SUCCEEDED else "")
    )
    if not transition(attempt_id=attempt_id, target=status, **fields):
        return False
    _release_ranks(attempt_id, RankStatus.KILLED)
    _revoke_job_tokens(attempt_id)
    send_event_on_commit(
        chain_audience(attempt.chain),
        events.AttemptFinished(
            chain_id=attempt.chain_id,
            attempt_id=attempt_id,
            worker_status=status,
            stop_reason=fields["stop_reason"],
            exit_code=exit_code,
        ),
    )
    sync_chain(chain_id=attempt.chain_id)
    enqueue_on_commit(SCHEDULE)
    return True


# --- job runtime API (attempt-scoped token) -----------------------------------------------------


def attempt_set_whole_life_state(*, attempt_id: int, value: int) -> bool:
    """Record the job's whole-life state; carried to the next attempt. Refused once finished."""
    changed = (
        Attempt.objects.filter(pk=attempt_id).exclude(queue_status=QueueStatus.FINISHED).update(whole_life_state=value)
    )
    return changed == 1


def attempt_report_checkpoint(*, attempt_id: int) -> bool:
    """The job saved a checkpoint: it loses least work if suspended now (victim choice). Answers the
    scheduler's checkpoint request, if any."""
    return (
        Attempt.objects.filter(pk=attempt_id)
        .exclude(queue_status=QueueStatus.FINISHED)
        .update(last_checkpoint_at=timezone.now(), checkpoint_requested_at=None)
        == 1
    )


def attempts_request_checkpoint(*, attempt_ids: Iterable[int], now: datetime) -> list[int]:
    """Ask running jobs to save a checkpoint soon (the scheduler will suspend them right after they
    report it); the job sees it through its status (``rota.job.checkpoint_requested()``). An attempt
    already asked keeps the time of the first request. Returns the attempts newly asked."""
    ids = sorted(set(attempt_ids))
    if not ids:
        return []
    fresh = list(
        Attempt.objects.filter(
            pk__in=ids,
            queue_status=QueueStatus.SCHEDULED,
            worker_status=WorkerStatus.RUNNING,
            checkpoint_requested_at__isnull=True,
        ).values_list("pk", flat=True)
    )
    if fresh:
        Attempt.objects.filter(pk__in=fresh, checkpoint_requested_at__isnull=True).update(checkpoint_requested_at=now)
    return sorted(fresh)


def attempt_acknowledge_suspend(*, attempt_id: int) -> bool:
    return (
        Attempt.objects.filter(
            pk=attempt_id, worker_status=WorkerStatus.SUSPENDING, suspend_state=SuspendState.REQUESTED
        ).update(suspend_state=SuspendState.ACKNOWLEDGED)
        == 1
    )


def attempt_go_suspend(*, attempt_id: int, rank: int | None = None) -> bool:
    """A rank is ready to be suspended now (``go_suspend()``). Once every rank still running is
    ready (or ``rank`` is None: the whole job), the launcher frees the nodes at once — so one rank
    cannot cut off another that is still saving its checkpoint.

    Outside a suspend, ``go_suspend()`` is the job asking to be suspended and requeued itself.
    Returns True if the request was taken.
    """
    now = timezone.now()
    with transaction.atomic():
        # Ranks call this at the same moment: lock the attempt so the "is every rank ready?"
        # check sees the other ranks' answers (no write skew under READ COMMITTED); its chain
        # first, as everywhere (``locks.lock_chain_of``).
        lock_chain_of(attempt_id)
        if not Attempt.objects.select_for_update().filter(pk=attempt_id).exists():
            return False
        if rank is not None:
            Rank.objects.filter(attempt_id=attempt_id, rank=rank).update(suspend_ready=True)
        pending = Rank.objects.filter(
            attempt_id=attempt_id, suspend_ready=False, status__in=[RankStatus.PENDING, RankStatus.RUNNING]
        )
        all_ready = rank is None or not pending.exists()
        state = SuspendState.READY if all_ready else SuspendState.ACKNOWLEDGED
        taken = Attempt.objects.filter(pk=attempt_id, worker_status=WorkerStatus.SUSPENDING).update(suspend_state=state)
        if not taken:
            taken = transition(
                attempt_id=attempt_id,
                target=WorkerStatus.SUSPENDING,
                only_from=[WorkerStatus.RUNNING],
                suspend_reason=SuspendReason.SELF,
                suspend_state=state,
                suspend_requested_at=now,
            )
            if taken:
                sync_chain(chain_id=Attempt.objects.filter(pk=attempt_id).values_list("chain_id", flat=True).get())
        if taken:
            enqueue_on_commit(RECONCILE)
    return bool(taken)


def attempt_set_watchdog(*, attempt_id: int, seconds: int) -> bool:
    return (
        Attempt.objects.filter(pk=attempt_id)
        .exclude(queue_status=QueueStatus.FINISHED)
        .update(watchdog_seconds=seconds)
        == 1
    )
