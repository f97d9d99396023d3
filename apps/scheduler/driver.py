"""The scheduler's thin shell: load a snapshot, call the pure ``policy.plan``, apply, emit.

A pass:
1. **Load** everything the policy needs in a constant number of queries (nodes, scheduled and
   queued attempts with their held nodes, resolved quotas of the users involved, fair-share usage)
   into plain frozen dataclasses.
2. **Plan**: ``policy.plan(snapshot)`` — pure, deterministic, no database.
   Nodes hosting development containers count as not schedulable (``apps.containers``: containers
   are placed at the start of the same pass, by bin-packing, see ``apps/containers/placement.py``).
3. **Apply** in one short transaction: starts (each in a savepoint; a conditional update from
   ``queued`` plus the "a node is held once" constraint make a double booking impossible even if
   two passes race), suspend requests, ABOVE_NORMAL demotions, and the explanations of waiting
   attempts (only the rows whose explanation changed are written). Usage counters are advanced.
4. **Emit** events and enqueue the launcher's reconcile pass — after commit, so a rolled-back pass
   says nothing. At most once a minute, the load it leaves is kept for the admins' charts
   (``history.py``).

Passes are single-flight through a lease (``apps.core.leases``); see ``tasks.schedule_pass``.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.containers.services import containers_place
from apps.core.tasks import enqueue_on_commit
from apps.experiments import events, lifecycle, locks
from apps.experiments.choices import QueueStatus, SuspendReason
from apps.experiments.models import Attempt
from apps.scheduler import policy
from apps.scheduler.events import SchedulerPassed
from apps.scheduler.history import load_sample_record
from apps.scheduler.models import UserUsage, decayed
from apps.scheduler.snapshot import CACHE, CLAIM_SECONDS, Loaded, policy_config, snapshot_load
from apps.scheduler.status import PassSummary, ReservationSeen, record_pass_summary
from portal.realtime import ADMINS_GROUP, chain_group, send_event_on_commit, team_group, user_group

__all__ = ["CLAIM_SECONDS", "Loaded", "apply_plan", "load_snapshot", "policy_config", "run_pass"]

logger = logging.getLogger(__name__)

_SUSPEND_REASONS = {
    policy.SuspendReason.PREEMPTED: SuspendReason.PREEMPTED,
    policy.SuspendReason.TIME_SHARE: SuspendReason.TIME_SHARE,
    policy.SuspendReason.OVER_QUOTA: SuspendReason.OVER_QUOTA,
}


@dataclass
class PassResult:
    started: list[int] = field(default_factory=list)
    suspended: list[int] = field(default_factory=list)
    demoted: list[int] = field(default_factory=list)
    checkpoint_requested: list[int] = field(default_factory=list)
    explained: int = 0
    written: dict[int, str] = field(default_factory=dict)  # attempt → explanation fingerprint stored
    skipped_starts: list[int] = field(default_factory=list)
    plan_seconds: float = 0.0
    total_seconds: float = 0.0


def load_snapshot(now: datetime | None = None) -> Loaded:
    """Read the cluster and the queue afresh (constant number of queries; no cache kept).

    ``run_pass`` uses the process's ``snapshot.CACHE`` instead, which re-reads only what changed."""
    return snapshot_load(now)


def _holders_json(holders: tuple[policy.Holder, ...], chain_of: dict[int, int]) -> list[dict[str, Any]]:
    return [
        {
            "attempt_id": h.attempt_id,
            "chain_id": chain_of.get(h.attempt_id),
            "user": h.user,
            "nodes": h.nodes,
            "priority": h.priority,
        }
        for h in holders
    ]


def apply_plan(loaded: Loaded, plan: policy.Plan, now: datetime) -> PassResult:
    """Write the plan's decisions. Call inside ``transaction.atomic``."""
    result = PassResult()
    touched_chains: set[int] = set()

    # Chains before attempts, as everywhere (``locks.lock_chain_of``): every chain this pass
    # changes is locked up front in one query, in id order.
    decided = [d.attempt_id for d in plan.demotions] + [s.attempt_id for s in plan.suspends]
    decided += [s.attempt_id for s in plan.starts]
    with locks.chains_locked({a: loaded.chain_of[a] for a in decided}):
        for demotion in plan.demotions:
            if Attempt.objects.filter(pk=demotion.attempt_id, queue_status=QueueStatus.SCHEDULED).update(
                effective_priority=demotion.new_priority
            ):
                result.demoted.append(demotion.attempt_id)

        for suspend in plan.suspends:
            if lifecycle.attempt_request_suspend(
                attempt_id=suspend.attempt_id,
                reason=_SUSPEND_REASONS[suspend.reason],
                beneficiary=suspend.beneficiary_attempt_id or None,
                now=now,
            ):
                result.suspended.append(suspend.attempt_id)
                touched_chains.add(loaded.chain_of[suspend.attempt_id])

        if plan.checkpoint_requests:
            result.checkpoint_requested = lifecycle.attempts_request_checkpoint(
                attempt_ids=plan.checkpoint_requests, now=now
            )

        for start in plan.starts:
            try:
                with transaction.atomic():
                    ok = lifecycle.attempt_start(
                        attempt_id=start.attempt_id,
                        priority=start.priority if start.effective_priority is None else start.effective_priority,
                        quota_priority=start.priority,
                        node_ids=[loaded.node_ids[n] for n in start.nodes],
                    )
                    if not ok:
                        result.skipped_starts.append(start.attempt_id)
                        continue
            except IntegrityError:
                # Another pass (or a forced concurrent one) booked one of these nodes first.
                logger.warning("start of attempt %s skipped: a node was already held", start.attempt_id)
                result.skipped_starts.append(start.attempt_id)
                continue
            result.started.append(start.attempt_id)
            touched_chains.add(loaded.chain_of[start.attempt_id])

    infeasible_ids = {item.attempt_id for item in plan.infeasible}
    changed: list[tuple[int, tuple[str, str, int | None, list[Any], bool, str]]] = []
    holder_digests: dict[int, str] = {}  # the policy shares holder tuples between explanations
    shown_changes: list[events.ExplanationChanged] = []  # what users see changed: an event each
    for attempt_id, explanation in plan.explanations.items():
        stored = loaded.current.get(attempt_id, "")
        position = explanation.position or None
        code, message = str(explanation.code).lower(), explanation.message[:500]
        infeasible = attempt_id in infeasible_ids
        shown = _digest(f"{code}\x1f{message}\x1f{position}")  # what users see: a change is an event
        key = id(explanation.holders)
        held_digest = holder_digests.get(key)
        if held_digest is None:
            held_digest = holder_digests[key] = _digest(repr(explanation.holders))
        digest = f"{shown}:{held_digest}{int(infeasible)}"
        if stored == digest:
            continue
        holders = _holders_json(explanation.holders, loaded.chain_of)
        changed.append((attempt_id, (code, message, position, holders, infeasible, digest)))
        if stored[:8] != shown:
            chain_id = loaded.chain_of[attempt_id]
            shown_changes.append(
                events.ExplanationChanged(
                    chain_id=chain_id, attempt_id=attempt_id, code=code, message=message, queue_position=position
                )
            )
    teams = lifecycle.shared_chain_teams({event.chain_id for event in shown_changes})
    for event in shown_changes:
        groups = [user_group(loaded.owner_of[event.attempt_id]), chain_group(event.chain_id)]
        if event.chain_id in teams:
            groups.append(team_group(teams[event.chain_id]))
        send_event_on_commit(groups, event)
    _write_explanations(changed)
    result.explained = len(changed)
    result.written = {attempt_id: row[5] for attempt_id, row in changed}

    for chain_id in sorted(touched_chains):
        lifecycle.sync_chain(chain_id=chain_id)
    _advance_usage(loaded, now)
    if result.started or result.suspended:
        enqueue_on_commit(lifecycle.RECONCILE)
        for uid in {loaded.owner_of[a] for a in result.started + result.suspended}:
            send_event_on_commit([user_group(uid)], events.QuotaUsageChanged(user_id=uid))
        # The admins' queue and node pages refresh (counts only: each owner hears of their own jobs).
        send_event_on_commit(
            [ADMINS_GROUP], SchedulerPassed(started=len(result.started), suspended=len(result.suspended))
        )
    return result


def _digest(text: str) -> str:
    """A short stable fingerprint (stored, so it must not depend on the process: no ``hash()``)."""
    return f"{zlib.crc32(text.encode()):08x}"


def _write_explanations(changed: list[tuple[int, tuple[str, str, int | None, list[Any], bool, str]]]) -> None:
    """Store explanations with one prepared statement executed per row (pipelined by psycopg).

    Only rows still queued are touched: an attempt that started or was canceled meanwhile keeps
    its state. Much faster than ``bulk_update``'s CASE expressions for thousands of rows.
    """
    if not changed:
        return
    table = Attempt._meta.db_table
    jsonb = "::jsonb" if connection.vendor == "postgresql" else ""
    sql = (
        f"UPDATE {table} SET pending_code = %s, pending_message = %s, queue_position = %s, "  # noqa: S608
        f"pending_holders = %s{jsonb}, infeasible = %s, pending_digest = %s WHERE id = %s AND queue_status = %s"
    )
    params = [
        (code, message, position, json.dumps(holders), infeasible, digest, attempt_id, QueueStatus.QUEUED.value)
        for attempt_id, (code, message, position, holders, infeasible, digest) in changed
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _advance_usage(loaded: Loaded, now: datetime) -> None:
    """Fair share: add the node-seconds held since each holder's last update, decayed."""
    if not loaded.held_by_user:
        return
    half_life = settings.ROTA_SCHEDULER["FAIRSHARE_HALF_LIFE_SECONDS"]
    rows = {u.user_id: u for u in UserUsage.objects.filter(user_id__in=list(loaded.held_by_user))}
    create: list[UserUsage] = []
    update: list[UserUsage] = []
    for uid, nodes in sorted(loaded.held_by_user.items()):
        row = rows.get(uid)
        if row is None:
            create.append(UserUsage(user_id=uid, value=0.0, updated_at=now))
            continue
        elapsed = max(0.0, (now - row.updated_at).total_seconds())
        # Cap one step at an interval a pass could have missed, so a long outage is not billed.
        step = min(elapsed, 60.0)
        row.value = decayed(row.value, elapsed, half_life) + nodes * step
        row.updated_at = now
        update.append(row)
    if create:
        UserUsage.objects.bulk_create(create, ignore_conflicts=True)
    if update:
        UserUsage.objects.bulk_update(update, ["value", "updated_at"])


def run_pass(now: datetime | None = None) -> PassResult:
    """One scheduling pass: load, plan, apply (one transaction), emit after commit."""
    started = time.perf_counter()
    now = now or timezone.now()
    # Development containers first: they are interactive, and the nodes they take are then out of
    # the jobs' snapshot. One single-flight pass does both, so the two never race for a node.
    containers_place(now)
    try:
        loaded = CACHE.load(now)
        t0 = time.perf_counter()
        plan = policy.plan(loaded.snapshot)
        plan_seconds = time.perf_counter() - t0
        with transaction.atomic():
            result = apply_plan(loaded, plan, now)
    except BaseException:
        CACHE.forget()  # after any doubt, the next pass reads everything
        raise
    # Committed: the kept rows learn the fingerprints this pass stored (the change log skips them).
    CACHE.remember_digests(result.written)
    result.plan_seconds = plan_seconds
    result.total_seconds = time.perf_counter() - started
    record_pass_summary(
        PassSummary(
            at=time.time(),
            seconds=result.total_seconds,
            plan_seconds=plan_seconds,
            running=len(loaded.snapshot.running),
            waiting=len(loaded.snapshot.waiting),
            started=len(result.started),
            suspended=len(result.suspended),
            reservations=tuple(
                ReservationSeen(r.group, r.attempt_id, loaded.chain_of.get(r.attempt_id), r.free_nodes, r.freeing_nodes)
                for r in plan.reservations
            ),
        )
    )
    started_now = set(result.started)
    load_sample_record(
        loaded.snapshot,
        {
            s.attempt_id: (s.nodes, s.priority if s.effective_priority is None else s.effective_priority)
            for s in plan.starts
            if s.attempt_id in started_now
        },
        now,
    )
    if result.started or result.suspended:
        logger.info(
            "scheduling pass: %d started, %d suspend requests, %d explanations updated (%.0f ms)",
            len(result.started),
            len(result.suspended),
            result.explained,
            result.total_seconds * 1000,
        )
    return result
