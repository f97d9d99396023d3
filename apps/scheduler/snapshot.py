"""The scheduler's snapshot: read the cluster and the queue, fully or by what changed since.

A pass needs every scheduled and waiting attempt (10,000s at a big site), the nodes they hold,
quotas and usage. Reading all of that from scratch took most of a pass (issue 19: 643 of 1,001 ms
at 10,000 waiting). So the process that runs passes keeps the rows between passes
(``SnapshotCache``) and, at the next pass, re-reads only the attempts whose rows changed:

* **What changed** comes from ``SnapshotChange``, a log written by database triggers on every
  insert, delete and relevant update of attempts, ranks and chains — whatever code path wrote
  them, ``QuerySet.update`` and raw SQL included (migration ``scheduler/0002``).
* **Which log rows are new** on PostgreSQL: each row carries its transaction id; before reading, a
  pass notes which transactions are still running and the next id to come (``pg_current_snapshot``)
  and the next pass reads the log rows of exactly those transactions and later ones. A transaction
  that committed late, after a later-numbered one, is therefore never missed, and rows are read
  twice at most. SQLite has one writer at a time, so there the log's ids are in commit order and
  "ids above the last seen" is exact.
* **Small tables** (nodes, groups, user names, quotas, usage, containers) are read every pass;
  only the attempt-sized parts are kept.
* **Time**, not rows, moves two things: a start-retry back-off (``not_before``) ends and a claim
  (``CLAIM_SECONDS``) expires. Both are kept as times and compared with ``now`` at every pass.
* **Safety net**: a full reload every ``FULL_RELOAD_PASSES`` passes, when the last pass of this
  process is older than ``FULL_RELOAD_SECONDS`` (another process may have pruned the log since),
  when too many rows changed, after a pass that failed, or whenever the cache is busy (another
  thread of the same process passing at once reads afresh and keeps nothing). ``load(full=True)``
  and the incremental path build the same ``Snapshot`` from the same rows (a test compares them
  after every kind of change).

Timestamps are read as epoch seconds computed by the database (no datetime parsing: 25,000 of
them cost ~350 ms on a loaded host). See docs/architecture.md ("Scheduling pass").
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import FloatField, Func, Q
from django.utils import timezone

from apps.accounts.models import User
from apps.cluster.choices import NodeState
from apps.cluster.models import Node, NodeGroup
from apps.containers.selectors import nodes_holding_containers
from apps.experiments.choices import QueueStatus, WorkerStatus
from apps.experiments.models import Attempt, Rank
from apps.quotas.selectors import quota_resolve_many
from apps.scheduler import policy
from apps.scheduler.models import SnapshotChange, UserUsage, decayed

#: a suspension made for a waiting attempt gives it a claim on the freed nodes for this long
CLAIM_SECONDS = 3600
#: the safety net: a full reload every this many passes of a process …
FULL_RELOAD_PASSES = 30
#: … and when this process's last pass is older than this (seconds; another may have run since)
FULL_RELOAD_SECONDS = 60.0
#: a waiting job's estimate less what its chain already ran is never taken as shorter than this (seconds)
ESTIMATE_FLOOR_SECONDS = 60.0
#: more changed attempts than this since the last pass: reading everything is as cheap
MAX_CHANGED = 2000
#: log rows every pass of every process has read for this long are deleted (>> FULL_RELOAD_SECONDS)
PRUNE_AFTER_SECONDS = 600.0

_SUSPENDING = (WorkerStatus.SUSPENDING, WorkerStatus.STOPPING)


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
    incremental: bool = False  # built from the kept rows plus what changed since the last pass
    reloaded: int = 0  # attempts read this time (all of them on a full load)


class Epoch(Func):
    """A timestamp column as float epoch seconds, computed by the database (exactly what
    ``datetime.timestamp()`` gives: integer microseconds divided once)."""

    def __init__(self, expression: str) -> None:
        super().__init__(expression, output_field=FloatField())

    def as_postgresql(self, compiler: Any, conn: Any, **extra: Any) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"(EXTRACT(EPOCH FROM {sql}) * 1000000)::bigint / 1000000.0::float8", params

    def as_sqlite(self, compiler: Any, conn: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        sql, params = compiler.compile(self.source_expressions[0])
        micros = (
            f"(CAST(strftime('%%s', {sql}) AS INTEGER) * 1000000 + CAST(substr({sql} || '.000000', 21, 6) AS INTEGER))"
        )
        return f"({micros} / 1000000.0)", params * 2


# Raw rows kept between passes (epoch floats, no model instances).
_SCHEDULED_FIELDS = (
    "id",
    "chain_id",
    "chain__owner_id",
    "chain__node_group_id",
    "effective_priority",
    "quota_priority",
    "started",
    "scheduled",
    "checkpoint",
    "worker_status",
    "chain__run_estimate_seconds",
)
_WAITING_FIELDS = (
    "id",
    "chain_id",
    "chain__owner_id",
    "chain__node_group_id",
    "chain__node_count",
    "priority",
    "chain__custom_rank",
    "chain_created",
    "created",
    "chain__environment_id",
    "pending_digest",
    "not_before_ts",
    "chain__run_estimate_seconds",
)


def _scheduled_rows(where: Q) -> list[tuple[Any, ...]]:
    return list(
        Attempt.objects.filter(where, queue_status=QueueStatus.SCHEDULED)
        .annotate(started=Epoch("started_at"), scheduled=Epoch("scheduled_at"), checkpoint=Epoch("last_checkpoint_at"))
        .values_list(*_SCHEDULED_FIELDS)
    )


def _waiting_rows(where: Q) -> list[tuple[Any, ...]]:
    # Attempts in a start-retry back-off (``not_before``) are kept and left out until it ends.
    return list(
        Attempt.objects.filter(where, queue_status=QueueStatus.QUEUED, chain__held=False)
        .annotate(
            chain_created=Epoch("chain__created_at"), created=Epoch("created_at"), not_before_ts=Epoch("not_before")
        )
        .values_list(*_WAITING_FIELDS)
    )


def _held_rows(where: Q) -> list[tuple[int, int, int]]:
    return list(Rank.objects.filter(where, holds_node=True).values_list("attempt_id", "rank", "node_id"))


def _remaining(estimate: int | None, ran: float) -> float | None:
    """What is left of the owner's run-time estimate after the chain ran ``ran`` seconds (at least
    ``ESTIMATE_FLOOR_SECONDS``); None without an estimate, or once the chain has run past it (as the
    policy treats a job past its estimate: unestimated)."""
    if estimate is None or ran >= estimate:
        return None
    return max(float(estimate) - ran, ESTIMATE_FLOOR_SECONDS)


def _victim_rows(where: Q) -> list[tuple[int, int, float]]:
    """Attempts suspended for another one: (id, beneficiary, when asked)."""
    rows = (
        Attempt.objects.filter(where, suspend_for__isnull=False, suspend_requested_at__isnull=False)
        .annotate(asked=Epoch("suspend_requested_at"))
        .values_list("id", "suspend_for", "asked")
    )
    return [(aid, benefits, asked) for aid, benefits, asked in rows if benefits is not None]


def _chain_ran(chain_ids: set[int]) -> dict[int, float]:
    """Seconds each chain's finished attempts ran (aging counts the chain, not the attempt)."""
    ran: dict[int, float] = dict.fromkeys(chain_ids, 0.0)
    if not chain_ids:
        return ran
    rows = (
        Attempt.objects.filter(chain_id__in=chain_ids, finished_at__isnull=False)
        .annotate(began=Epoch("started_at"), queued=Epoch("scheduled_at"), ended=Epoch("finished_at"))
        .values_list("chain_id", "began", "queued", "ended")
    )
    for cid, began, queued, ended in rows:
        start = began if began is not None else queued
        if start is not None and ended is not None:
            ran[cid] += max(0.0, ended - start)
    return ran


#: where the next pass starts reading the change log: PostgreSQL — (xmax, transactions running)
#: of a snapshot taken before reading; SQLite — (highest log id read, ())
Token = tuple[int, tuple[int, ...]]


def _token() -> Token:
    """Every log row of a transaction that had ended when this is taken is visible to the reads
    that follow; the next pass reads the others: those of the transactions running now, and later."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_snapshot_xmax(s)::text::bigint,"
                " ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) AS x) FROM pg_current_snapshot() AS s"
            )
            xmax, running = cursor.fetchone()
            return int(xmax), tuple(sorted(running))
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {SnapshotChange._meta.db_table}")  # noqa: S608
        return int(cursor.fetchone()[0]), ()


def _unseen(token: Token) -> Q:
    """Log rows a pass that took ``token`` before reading may not have seen."""
    if connection.vendor == "postgresql":
        xmax, running = token
        return Q(xid__gte=xmax) | Q(xid__in=running) if running else Q(xid__gte=xmax)
    return Q(id__gt=token[0])


def _changes_since(token: Token) -> tuple[Token, set[int], set[int]]:
    """(next token, attempt ids, chain ids) written since ``token``. The next token is taken
    before the log is read, so nothing written meanwhile is lost."""
    if connection.vendor == "postgresql":
        nxt = _token()
        rows = list(SnapshotChange.objects.filter(_unseen(token)).values_list("attempt_id", "chain_id"))
    else:
        found = list(SnapshotChange.objects.filter(_unseen(token)).values_list("attempt_id", "chain_id", "id"))
        nxt = (max((r[2] for r in found), default=token[0]), ())
        rows = [(a, c) for a, c, _id in found]
    attempts: set[int] = set()
    chains: set[int] = set()
    for attempt_id, chain_id in rows:
        if attempt_id is not None:
            attempts.add(attempt_id)
        if chain_id is not None:
            chains.add(chain_id)
    return nxt, attempts, chains


def _prune(token: Token) -> None:
    """Delete the log rows every pass after ``token`` has seen."""
    SnapshotChange.objects.exclude(_unseen(token)).delete()


class SnapshotCache:
    """The rows of the last pass, and how to bring them up to date (module docstring).

    One per process (``CACHE``); safe to share between threads: a pass that finds it busy reads
    everything itself.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._valid = False
        self.token: Token = (0, ())
        self.passes = 0
        self.last_at = 0.0
        self.scheduled: dict[int, tuple[Any, ...]] = {}
        self.waiting: dict[int, tuple[Any, ...]] = {}
        self.held: dict[int, list[tuple[int, int]]] = {}  # attempt → [(rank, node id)]
        self.victims: dict[int, tuple[int, float]] = {}  # attempt → (beneficiary, asked at)
        self.chain_ran: dict[int, float] = {}
        # policy objects built from the rows, kept while their rows and the name tables stand
        self._running: dict[int, policy.Running] = {}
        self._waiting: dict[int, policy.Waiting] = {}
        self._names: tuple[dict[int, str], dict[int, str], dict[int, str]] | None = None
        self._nodes: tuple[list[tuple[Any, ...]], set[int], tuple[policy.Node, ...]] | None = None
        self._tokens: deque[tuple[float, Token]] = deque()  # (monotonic time, token) for pruning

    def forget(self) -> None:
        """The next load reads everything (after a failed pass, or a test that replaced the world)."""
        with self._lock:
            self._valid = False

    def remember_digests(self, written: dict[int, str]) -> None:
        """The pass committed these explanation fingerprints (the log does not record them)."""
        with self._lock:
            for aid, digest in written.items():
                row = self.waiting.get(aid)
                if row is not None:
                    self.waiting[aid] = (*row[:10], digest, *row[11:])  # not in the policy object

    def load(self, now: datetime | None = None, *, full: bool = False) -> Loaded:
        now = now or timezone.now()
        if not self._lock.acquire(blocking=False):
            return SnapshotCache().load(now, full=True)  # busy: read afresh, keep nothing
        try:
            stale = time.monotonic() - self.last_at > FULL_RELOAD_SECONDS
            incremental = self._valid and not full and not stale and self.passes < FULL_RELOAD_PASSES
            reloaded = self._update() if incremental else None
            if reloaded is None:
                self._valid = False
                reloaded = self._reload()
                self.passes = 0
                incremental = False
            self._valid = True
            self.passes += 1
            self.last_at = time.monotonic()
            self._prune_old()
            loaded = self._build(now)
            loaded.incremental, loaded.reloaded = incremental, reloaded
            return loaded
        except BaseException:
            self._valid = False
            raise
        finally:
            self._lock.release()

    def _reload(self) -> int:
        self.token = _token()
        everything = Q()
        self.scheduled = {row[0]: row for row in _scheduled_rows(everything)}
        self.waiting = {row[0]: row for row in _waiting_rows(everything)}
        self.held = defaultdict(list)
        for aid, rank, node_id in _held_rows(everything):
            self.held[aid].append((rank, node_id))
        self.victims = {aid: (benefits, asked) for aid, benefits, asked in _victim_rows(everything)}
        self.chain_ran = {}
        self._running, self._waiting, self._names, self._nodes = {}, {}, None, None
        return len(self.scheduled) + len(self.waiting)

    def _update(self) -> int | None:
        """Re-read what changed since the last pass; None if a full reload is the better deal."""
        token, attempts, chains = _changes_since(self.token)
        if max(len(attempts), len(chains)) > MAX_CHANGED:
            return None
        if chains:  # a chain's change (held, owner, size …) is a change of its live attempt
            attempts |= {aid for aid, row in self.scheduled.items() if row[1] in chains}
            attempts |= {aid for aid, row in self.waiting.items() if row[1] in chains}
        for aid in attempts:
            self.scheduled.pop(aid, None)
            self.waiting.pop(aid, None)
            self.held.pop(aid, None)
            self.victims.pop(aid, None)
            self._running.pop(aid, None)
            self._waiting.pop(aid, None)
        if attempts or chains:
            where = Q(id__in=attempts) | Q(chain_id__in=chains)
            for row in _scheduled_rows(where):
                self.scheduled[row[0]] = row
            for row in _waiting_rows(where):
                self.waiting[row[0]] = row
        if attempts:
            for aid, rank, node_id in _held_rows(Q(attempt_id__in=attempts)):
                self.held.setdefault(aid, []).append((rank, node_id))
            for aid, benefits, asked in _victim_rows(Q(id__in=attempts)):
                self.victims[aid] = (benefits, asked)
        # An attempt that finished changes what its chain ran before: the log names its chain.
        for cid in chains:
            self.chain_ran.pop(cid, None)
        self.token = token
        return len(attempts)

    def _prune_old(self) -> None:
        moment = time.monotonic()
        self._tokens.append((moment, self.token))
        old = None
        while self._tokens and moment - self._tokens[0][0] >= PRUNE_AFTER_SECONDS:
            old = self._tokens.popleft()[1]
        if old is not None:
            _prune(old)

    def _build(self, now: datetime) -> Loaded:
        epoch = now.timestamp()
        group_names = dict(NodeGroup.objects.values_list("id", "name"))
        node_rows = list(Node.objects.order_by("id").values_list("id", "name", "group_id", "room", "state"))
        # Nodes hosting development containers are in use (unless their group lets jobs take them back).
        with_containers = nodes_holding_containers()
        if self._nodes is not None and self._nodes[0] == node_rows and self._nodes[1] == with_containers:
            nodes = self._nodes[2]
        else:
            nodes = tuple(
                policy.Node(
                    name=name,
                    group=group_names[group_id],
                    room=room,
                    schedulable=state == NodeState.READY and node_id not in with_containers,
                )
                for node_id, name, group_id, room, state in node_rows
            )
            self._nodes = (node_rows, with_containers, nodes)
        node_ids = {name: node_id for node_id, name, _g, _r, _s in node_rows}
        node_names = {node_id: name for node_id, name, _g, _r, _s in node_rows}

        waiting_rows = [
            row for row in map(self.waiting.__getitem__, sorted(self.waiting)) if row[11] is None or row[11] <= epoch
        ]
        scheduled_rows = list(map(self.scheduled.__getitem__, sorted(self.scheduled)))
        # Aging counts the chain's run time: what earlier attempts of ABOVE_NORMAL chains ran; so does what
        # is left of a run-time estimate.
        above = int(policy.Priority.ABOVE_NORMAL)
        aging = {row[1] for row in scheduled_rows if row[4] == above or row[10] is not None} | {
            row[1] for row in waiting_rows if row[5] == above or row[12] is not None
        }
        missing = aging - self.chain_ran.keys()
        if missing:
            self.chain_ran.update(_chain_ran(missing))
        chain_ran = self.chain_ran
        # The beneficiaries of recent suspensions keep their claim on the nodes they caused to be freed.
        since = epoch - CLAIM_SECONDS
        claimants = {benefits for benefits, asked in self.victims.values() if asked >= since}

        owner_ids = {row[2] for row in scheduled_rows} | {row[2] for row in waiting_rows}
        usernames = dict(User.objects.filter(pk__in=owner_ids).values_list("id", "username"))
        names = (usernames, group_names, node_names)
        if names != self._names:  # a rename (or a new owner): every kept object may say an old name
            self._running, self._waiting, self._names = {}, {}, names
        built_running, built_waiting = self._running, self._waiting
        user_ids: dict[str, int] = {}
        chain_of: dict[int, int] = {}
        owner_of: dict[int, int] = {}
        held_by_user: dict[int, int] = defaultdict(int)
        running: list[policy.Running] = []
        for aid, cid, uid, group_id, prio, qprio, started, sched, ckpt, status, estimate in scheduled_rows:
            uname = usernames[uid]
            user_ids[uname] = uid
            chain_of[aid] = cid
            owner_of[aid] = uid
            ran = chain_ran.get(cid, 0.0)
            left = _remaining(estimate, ran)
            one = built_running.get(aid)
            if one is None:
                began = started if started is not None else sched
                one = policy.Running(
                    attempt_id=aid,
                    chain_id=str(cid),
                    user=uname,
                    group=group_names[group_id],
                    priority=prio if prio is not None else 0,
                    quota_priority=qprio if qprio is not None else (prio or 0),
                    nodes=tuple(node_names[node] for _rank, node in sorted(self.held.get(aid, ()))),
                    started_at=began or epoch,
                    last_checkpoint_at=ckpt,
                    suspending=status in _SUSPENDING,
                    chain_ran_before=ran,
                    expected_end=None if left is None else (began or epoch) + left,
                )
                if began:  # otherwise it says "started now", which moves
                    built_running[aid] = one
            elif one.chain_ran_before != ran:
                end = None if left is None else one.started_at + left
                one = built_running[aid] = dataclasses.replace(one, chain_ran_before=ran, expected_end=end)
            held_by_user[uid] += len(one.nodes)
            running.append(one)
        waiting: list[policy.Waiting] = []
        current: dict[int, str] = {}
        for aid, cid, uid, group_id, count, prio, rank, first, created, env_id, digest, _nb, estimate in waiting_rows:
            uname = usernames[uid]
            user_ids[uname] = uid
            chain_of[aid] = cid
            owner_of[aid] = uid
            ran, claim = chain_ran.get(cid, 0.0), aid in claimants
            left = _remaining(estimate, ran)
            wait = built_waiting.get(aid)
            if wait is None:
                wait = built_waiting[aid] = policy.Waiting(
                    attempt_id=aid,
                    chain_id=str(cid),
                    user=uname,
                    group=group_names[group_id],
                    node_count=count,
                    priority=prio,
                    custom_rank=rank if rank is not None else first,
                    first_submitted_at=first,
                    queued_at=created,
                    environment_ok=env_id is not None,
                    chain_ran=ran,
                    claim=claim,
                    run_estimate=left,
                )
            elif wait.chain_ran != ran or wait.claim != claim or wait.run_estimate != left:
                wait = built_waiting[aid] = dataclasses.replace(wait, chain_ran=ran, claim=claim, run_estimate=left)
            waiting.append(wait)
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
            now=epoch,
            nodes=nodes,
            running=tuple(running),
            waiting=tuple(waiting),
            quotas=quotas,
            usage=usage,
            config=policy_config(),
        )
        return Loaded(snapshot, node_ids, user_ids, chain_of, owner_of, dict(held_by_user), current)


#: the process's cache, used by ``driver.run_pass``
CACHE = SnapshotCache()


def snapshot_load(now: datetime | None = None) -> Loaded:
    """Everything read afresh (no cache kept): what every incremental load must equal."""
    return SnapshotCache().load(now, full=True)
