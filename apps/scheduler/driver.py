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
   says nothing.

Passes are single-flight through a lease (``apps.core.leases``); see ``tasks.schedule_pass``.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import User
from apps.cluster.choices import NodeState
from apps.cluster.models import Node, NodeGroup
from apps.containers.selectors import nodes_holding_containers
from apps.containers.services import containers_place
from apps.core.tasks import enqueue_on_commit
from apps.experiments import events, lifecycle, locks
from apps.experiments.choices import QueueStatus, SuspendReason, WorkerStatus
from apps.experiments.models import Attempt, Rank
from apps.quotas.selectors import quota_resolve_many
from apps.scheduler import policy
from apps.scheduler.models import UserUsage, decayed
from portal.realtime import chain_group, send_event_on_commit, team_group, user_group

logger = logging.getLogger(__name__)

_SUSPEND_REASONS = {
    policy.SuspendReason.PREEMPTED: SuspendReason.PREEMPTED,
    policy.SuspendReason.TIME_SHARE: SuspendReason.TIME_SHARE,
    policy.SuspendReason.OVER_QUOTA: SuspendReason.OVER_QUOTA,
}
#: a suspension made for a waiting attempt gives it a claim on the freed nodes for this long
CLAIM_SECONDS = 3600


def policy_config() -> policy.PolicyConfig:
    conf = settings.ROTA_SCHEDULER
    return policy.PolicyConfig(
        min_run_seconds=conf["MIN_RUN_SECONDS"],
        time_slice_seconds=conf["TIME_SLICE_SECONDS"],
        timeshare_wait_seconds=conf["TIMESHARE_WAIT_SECONDS"],
        above_normal_aging_seconds=conf["ABOVE_NORMAL_AGING_SECONDS"],
        fairshare_half_life_seconds=conf["FAIRSHARE_HALF_LIFE_SECONDS"],
        reservation_wait_seconds=conf["RESERVATION_WAIT_SECONDS"],
        reservation_hold_seconds=conf["RESERVATION_HOLD_SECONDS"],
        restart_cost_seconds=conf["RESTART_COST_SECONDS"],
        urgent_priority=int(conf["URGENT_PRIORITY"]),
        checkpoint_fresh_seconds=conf["CHECKPOINT_FRESH_SECONDS"],
        checkpoint_wait_seconds=conf["CHECKPOINT_WAIT_SECONDS"],
        timeshare_max_ratio=conf["TIMESHARE_MAX_RATIO"],
        victim_wait_seconds=conf["VICTIM_WAIT_SECONDS"],
        preempt_wait_seconds=conf["PREEMPT_WAIT_SECONDS"],
        starvation_seconds=conf["STARVATION_SECONDS"],
        request_checkpoints=bool(conf["REQUEST_CHECKPOINTS"]),
    )


@dataclass
class Loaded:
    """A snapshot plus what the apply step needs to map decisions back to rows."""

    snapshot: policy.Snapshot
    node_ids: dict[str, int]
    user_ids: dict[str, int]
    chain_of: dict[int, int]  # attempt id → chain id
    owner_of: dict[int, int]  # attempt id → owner id
    held_by_user: dict[int, int]  # user id → nodes held now
    current: dict[int, str]  # waiting attempt → fingerprint of its stored explanation
    queries: int = 0


@dataclass
class PassResult:
    started: list[int] = field(default_factory=list)
    suspended: list[int] = field(default_factory=list)
    demoted: list[int] = field(default_factory=list)
    checkpoint_requested: list[int] = field(default_factory=list)
    explained: int = 0
    skipped_starts: list[int] = field(default_factory=list)
    plan_seconds: float = 0.0
    total_seconds: float = 0.0


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def load_snapshot(now: datetime | None = None) -> Loaded:
    """Read the cluster and the queue (constant number of queries)."""
    now = now or timezone.now()
    # Small lookup tables instead of joins: thousands of rows then carry integers, not strings.
    group_names = dict(NodeGroup.objects.values_list("id", "name"))
    node_rows = list(Node.objects.values_list("id", "name", "group_id", "room", "state"))
    # Nodes hosting development containers are in use (unless their group lets jobs take them back).
    with_containers = nodes_holding_containers()
    nodes = tuple(
        policy.Node(
            name=name,
            group=group_names[group_id],
            room=room,
            schedulable=state == NodeState.READY and node_id not in with_containers,
        )
        for node_id, name, group_id, room, state in node_rows
    )
    node_ids = {name: node_id for node_id, name, _g, _r, _s in node_rows}
    node_names = {node_id: name for node_id, name, _g, _r, _s in node_rows}

    held: dict[int, list[str]] = defaultdict(list)
    for attempt_id, node_id in (
        Rank.objects.filter(holds_node=True).order_by("attempt_id", "rank").values_list("attempt_id", "node_id")
    ):
        held[attempt_id].append(node_names[node_id])

    scheduled = list(
        Attempt.objects.filter(queue_status=QueueStatus.SCHEDULED).values_list(
            "id",
            "chain_id",
            "chain__owner_id",
            "chain__node_group_id",
            "effective_priority",
            "quota_priority",
            "started_at",
            "scheduled_at",
            "last_checkpoint_at",
            "worker_status",
        )
    )
    waiting_rows = list(
        # Attempts waiting out a start-retry back-off (``not_before``) are not in the queue yet.
        Attempt.objects.filter(queue_status=QueueStatus.QUEUED, chain__held=False)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .values_list(
            "id",
            "chain_id",
            "chain__owner_id",
            "chain__node_group_id",
            "chain__node_count",
            "priority",
            "chain__custom_rank",
            "chain__created_at",
            "created_at",
            "chain__environment_id",
            "pending_digest",
        )
    )
    # Aging counts the chain's run time: what earlier attempts of ABOVE_NORMAL chains ran.
    above = int(policy.Priority.ABOVE_NORMAL)
    aging_chains = {row[1] for row in scheduled if row[4] == above} | {
        row[1] for row in waiting_rows if row[5] == above
    }
    chain_ran: dict[int, float] = defaultdict(float)
    if aging_chains:
        for cid, a_started, a_scheduled, a_finished in Attempt.objects.filter(
            chain_id__in=aging_chains, finished_at__isnull=False
        ).values_list("chain_id", "started_at", "scheduled_at", "finished_at"):
            began = a_started or a_scheduled
            if began is not None and a_finished is not None:
                chain_ran[cid] += max(0.0, (a_finished - began).total_seconds())
    # The beneficiaries of recent suspensions keep their claim on the nodes they caused to be freed.
    claimants = set(
        Attempt.objects.filter(
            suspend_for__isnull=False, suspend_requested_at__gte=now - timedelta(seconds=CLAIM_SECONDS)
        ).values_list("suspend_for", flat=True)
    )
    user_ids: dict[str, int] = {}
    chain_of: dict[int, int] = {}
    owner_of: dict[int, int] = {}
    held_by_user: dict[int, int] = defaultdict(int)
    running: list[policy.Running] = []
    owner_ids = {row[2] for row in scheduled} | {row[2] for row in waiting_rows}
    usernames = dict(User.objects.filter(pk__in=owner_ids).values_list("id", "username"))
    for aid, cid, uid, group_id, prio, qprio, started, sched, ckpt, status in scheduled:
        uname, group = usernames[uid], group_names[group_id]
        user_ids[uname] = uid
        chain_of[aid] = cid
        owner_of[aid] = uid
        holding = tuple(held.get(aid, ()))
        held_by_user[uid] += len(holding)
        running.append(
            policy.Running(
                attempt_id=aid,
                chain_id=str(cid),
                user=uname,
                group=group,
                priority=prio if prio is not None else 0,
                quota_priority=qprio if qprio is not None else (prio or 0),
                nodes=holding,
                started_at=_ts(started or sched) or now.timestamp(),
                last_checkpoint_at=_ts(ckpt),
                suspending=status in (WorkerStatus.SUSPENDING, WorkerStatus.STOPPING),
                chain_ran_before=chain_ran.get(cid, 0.0),
            )
        )
    waiting: list[policy.Waiting] = []
    current: dict[int, str] = {}
    for (
        aid,
        cid,
        uid,
        group_id,
        count,
        prio,
        rank,
        chain_created,
        created,
        env_id,
        digest,
    ) in waiting_rows:
        uname, group = usernames[uid], group_names[group_id]
        user_ids[uname] = uid
        chain_of[aid] = cid
        owner_of[aid] = uid
        first = chain_created.timestamp()
        waiting.append(
            policy.Waiting(
                attempt_id=aid,
                chain_id=str(cid),
                user=uname,
                group=group,
                node_count=count,
                priority=prio,
                custom_rank=rank if rank is not None else first,
                first_submitted_at=first,
                queued_at=created.timestamp(),
                environment_ok=env_id is not None,
                chain_ran=chain_ran.get(cid, 0.0),
                claim=aid in claimants,
            )
        )
        current[aid] = digest

    resolved = quota_resolve_many(user_ids=user_ids.values())
    quotas = {name: dict(resolved[uid].node) for name, uid in user_ids.items()}
    half_life = settings.ROTA_SCHEDULER["FAIRSHARE_HALF_LIFE_SECONDS"]
    id_to_name = {uid: name for name, uid in user_ids.items()}
    usage = {
        id_to_name[u.user_id]: decayed(u.value, (now - u.updated_at).total_seconds(), half_life)
        for u in UserUsage.objects.filter(user_id__in=list(user_ids.values()))
    }
    snapshot = policy.Snapshot(
        now=now.timestamp(),
        nodes=nodes,
        running=tuple(running),
        waiting=tuple(waiting),
        quotas=quotas,
        usage=usage,
        config=policy_config(),
    )
    return Loaded(snapshot, node_ids, user_ids, chain_of, owner_of, dict(held_by_user), current)


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

    for chain_id in sorted(touched_chains):
        lifecycle.sync_chain(chain_id=chain_id)
    _advance_usage(loaded, now)
    if result.started or result.suspended:
        enqueue_on_commit(lifecycle.RECONCILE)
        for uid in {loaded.owner_of[a] for a in result.started + result.suspended}:
            send_event_on_commit([user_group(uid)], events.QuotaUsageChanged(user_id=uid))
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
    loaded = load_snapshot(now)
    t0 = time.perf_counter()
    plan = policy.plan(loaded.snapshot)
    plan_seconds = time.perf_counter() - t0
    with transaction.atomic():
        result = apply_plan(loaded, plan, now)
    result.plan_seconds = plan_seconds
    result.total_seconds = time.perf_counter() - started
    if result.started or result.suspended:
        logger.info(
            "scheduling pass: %d started, %d suspend requests, %d explanations updated (%.0f ms)",
            len(result.started),
            len(result.suspended),
            result.explained,
            result.total_seconds * 1000,
        )
    return result
