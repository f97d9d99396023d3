"""A full scheduling pass on PostgreSQL: load the snapshot, plan, apply — as production runs it.

Used by ``bench/scheduler.py`` (section "pass"). The synthetic workload of ``bench/workload.py``
is written into a scratch database (users, quotas, nodes, chains, attempts, ranks holding nodes),
then ``apps.scheduler.driver.run_pass`` is timed; each timed pass runs inside a transaction that is
rolled back, so every run sees the same queue. Steady passes are timed twice: reading the whole
snapshot, and as ``run_pass`` does, bringing the process's kept snapshot up to date with what
changed (``CHURN`` attempts between passes). The database is dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import statistics
import time
from datetime import UTC, datetime
from typing import Any

BENCH_DB = os.environ.get("ROTA_BENCH_DB", "rota_bench_sched")
PG_ADMIN_URL = os.environ.get("ROTA_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")


class _Rollback(Exception):
    pass


def _setup_django() -> None:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    os.environ.update(
        ROTA_ENV="production",
        DATABASE_URL=f"{base}/{BENCH_DB}",
        REDIS_URL=os.environ.get("ROTA_BENCH_REDIS", "redis://127.0.0.1:6379/13"),
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="localhost",
        SECURE_SSL_REDIRECT="false",
        ROTA_TASK_RUNNER="inline",
        DJANGO_SETTINGS_MODULE="portal.settings",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from apps.core import tasks

    # Only the scheduler is measured: passes it asks for (the launcher's) are not run.
    tasks._dispatch = lambda name, args: None


def _recreate_database(drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _load(snapshot: Any) -> int:
    """Write the synthetic snapshot into the database. Returns the number of rows written."""
    from django.contrib.auth.models import Group

    from apps.accounts.models import User
    from apps.cluster.choices import NodeState
    from apps.cluster.models import Environment, Node, NodeGroup
    from apps.core.priorities import Priority
    from apps.experiments.choices import QueueStatus, WorkerStatus
    from apps.experiments.models import Attempt, Chain, Rank
    from apps.quotas.models import Quota
    from apps.scheduler.models import UserUsage

    def ts(epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, tz=UTC)

    rows = 0
    public, _ = Group.objects.get_or_create(name="public")
    env = Environment.objects.create(name="default", image="python:3.11")
    Quota.objects.create(group=public, kind="environment", environment=env, resource="environment:default", value=1)
    users = {
        name: User.objects.create(username=name)
        for name in sorted(
            set(snapshot.quotas) | {r.user for r in snapshot.running} | {w.user for w in snapshot.waiting}
        )
    }
    group_names = sorted({n.group for n in snapshot.nodes} | {w.group for w in snapshot.waiting})
    groups = {name: NodeGroup.objects.create(name=name) for name in group_names}
    nodes = Node.objects.bulk_create(
        [
            Node(
                name=n.name,
                group=groups[n.group],
                room=n.room,
                gpu_count=8,
                state=NodeState.READY if n.schedulable else NodeState.NOT_READY,
            )
            for n in snapshot.nodes
        ],
        batch_size=2000,
    )
    node_ids = {n.name: n.pk for n in nodes}
    quotas = []
    for user, table in snapshot.quotas.items():
        for (group, level), value in table.items():
            quotas.append(
                Quota(
                    user=users[user],
                    kind="node",
                    node_group=groups[group],
                    priority=level,
                    value=value,
                    resource=f"node:{group}:{Priority(level).label}",
                )
            )
    Quota.objects.bulk_create(quotas, batch_size=2000)
    UserUsage.objects.bulk_create(
        [UserUsage(user=users[u], value=v, updated_at=ts(snapshot.now)) for u, v in snapshot.usage.items()]
    )
    rows += len(nodes) + len(quotas) + len(users)

    # created_at / auto_now_add would stamp "now"; the workload's times matter (waits, slices).
    fields = [Attempt._meta.get_field("created_at"), Chain._meta.get_field("created_at")]
    for f in fields:
        f.auto_now_add = False  # type: ignore[attr-defined]
    try:
        chains = []
        for r in snapshot.running:
            chains.append(
                Chain(
                    owner=users[r.user],
                    name=f"run-{r.attempt_id}",
                    workspace="/w",
                    entrypoint="t.py",
                    node_group=groups[r.group],
                    node_count=len(r.nodes),
                    priority=r.quota_priority,
                    environment=env,
                    environment_name="default",
                    status="running",
                    created_at=ts(r.started_at - 60),
                )
            )
        for w in snapshot.waiting:
            chains.append(
                Chain(
                    owner=users[w.user],
                    name=f"wait-{w.attempt_id}",
                    workspace="/w",
                    entrypoint="t.py",
                    node_group=groups[w.group],
                    node_count=w.node_count,
                    priority=w.priority,
                    custom_rank=w.custom_rank,
                    environment=env if w.environment_ok else None,
                    environment_name="default",
                    status="waiting",
                    created_at=ts(w.first_submitted_at),
                )
            )
        chains = Chain.objects.bulk_create(chains, batch_size=2000)
        attempts = []
        for chain, r in zip(chains[: len(snapshot.running)], snapshot.running, strict=True):
            attempts.append(
                Attempt(
                    chain=chain,
                    index=0,
                    priority=r.quota_priority,
                    effective_priority=r.priority,
                    quota_priority=r.quota_priority,
                    queue_status=QueueStatus.SCHEDULED,
                    worker_status=WorkerStatus.SUSPENDING if r.suspending else WorkerStatus.RUNNING,
                    created_at=ts(r.started_at - 60),
                    scheduled_at=ts(r.started_at),
                    started_at=ts(r.started_at),
                    last_checkpoint_at=ts(r.last_checkpoint_at) if r.last_checkpoint_at else None,
                )
            )
        for chain, w in zip(chains[len(snapshot.running) :], snapshot.waiting, strict=True):
            attempts.append(Attempt(chain=chain, index=0, priority=w.priority, created_at=ts(w.queued_at)))
        attempts = Attempt.objects.bulk_create(attempts, batch_size=2000)
    finally:
        for f in fields:
            f.auto_now_add = True  # type: ignore[attr-defined]
    for chain, attempt in zip(chains, attempts, strict=True):
        chain.latest_attempt = attempt
    Chain.objects.bulk_update(chains, ["latest_attempt"], batch_size=2000)
    ranks = [
        Rank(attempt=attempt, rank=i, node_id=node_ids[name], holds_node=True, status="running")
        for attempt, r in zip(attempts[: len(snapshot.running)], snapshot.running, strict=True)
        for i, name in enumerate(r.nodes)
    ]
    Rank.objects.bulk_create(ranks, batch_size=2000)
    rows += 2 * len(chains) + len(ranks)
    return rows


#: rows changed between two timed incremental passes (running jobs reporting a checkpoint)
CHURN = 20


def _incremental_passes(now: datetime, runs: int) -> dict[str, Any]:
    """Steady passes as ``run_pass`` makes them: the snapshot kept by the process and brought up to
    date from the change log. Before each, ``CHURN`` running attempts report a checkpoint
    (committed, so the triggers log them); each pass is then rolled back like the full ones."""
    from datetime import timedelta

    from django.db import transaction

    from apps.experiments.choices import QueueStatus
    from apps.experiments.models import Attempt
    from apps.scheduler import driver, policy
    from apps.scheduler.snapshot import CACHE

    churn = list(
        Attempt.objects.filter(queue_status=QueueStatus.SCHEDULED).order_by("id").values_list("id", flat=True)[:CHURN]
    )
    CACHE.forget()
    CACHE.load(now)
    timings, load_ms, reloaded, incremental, cpu = [], [], [], [], []
    for i in range(runs + 1):  # the first is not counted
        Attempt.objects.filter(pk__in=churn).update(last_checkpoint_at=now - timedelta(seconds=3000 + i % 2))
        began = time.perf_counter()
        cpu0 = time.process_time()
        try:
            with transaction.atomic():
                loaded = CACHE.load(now)
                t1 = time.perf_counter()
                driver.apply_plan(loaded, policy.plan(loaded.snapshot), now)
                raise _Rollback
        except _Rollback:
            pass
        timings.append((time.perf_counter() - began) * 1000)
        cpu.append((time.process_time() - cpu0) * 1000)
        load_ms.append((t1 - began) * 1000)
        reloaded.append(loaded.reloaded)
        incremental.append(loaded.incremental)
    timings, load_ms, cpu = timings[1:], load_ms[1:], cpu[1:]
    ordered = sorted(timings)
    return {
        "inc_cpu_ms": statistics.median(cpu),
        "inc_median_ms": statistics.median(timings),
        "inc_p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "inc_load_ms": statistics.median(load_ms),
        "inc_reloaded": statistics.median(reloaded[1:]),
        "inc_all_incremental": all(incremental[1:]),
    }


def bench_pass(
    sizes: tuple[int, ...], *, n_nodes: int = 2000, n_running: int = 2000, runs: int = 7, seed: int = 1
) -> list[dict[str, Any]]:
    """Time full passes (load + plan + apply) on PostgreSQL at each waiting-queue size."""
    from bench.workload import make_snapshot

    _recreate_database()
    _setup_django()
    from django.core.management import call_command
    from django.db import connection, connections, transaction

    from apps.scheduler import driver, policy
    from portal.realtime import capture_events, outbox

    results = []
    try:
        call_command("migrate", verbosity=0)
        for n_waiting in sizes:
            with connection.cursor() as cursor:
                cursor.execute(
                    "TRUNCATE experiments_rank, experiments_attempt, experiments_chain, quotas_quota, "
                    "scheduler_userusage, cluster_node, cluster_nodegroup, cluster_environment, accounts_user "
                    "CASCADE"
                )
            snapshot = make_snapshot(n_nodes, n_running, n_waiting, seed)
            with transaction.atomic():
                _load(snapshot)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            now = datetime.fromtimestamp(snapshot.now, tz=UTC)
            # The first pass after loading writes every waiting attempt's explanation (a cold
            # start); it is committed and reported apart. Later passes are the steady state: each
            # runs in a transaction rolled back afterwards, so all see the same queue.
            began = time.perf_counter()
            with capture_events() as cold_events:
                cold = driver.run_pass(now)
            cold_ms = (time.perf_counter() - began) * 1000
            # Its websocket events leave through the realtime outbox's thread, after the pass:
            # reported apart (the time until Redis has taken every one of them).
            outbox.flush(600)
            events_ms = (time.perf_counter() - began) * 1000
            driver.run_pass(now)  # the queue settles: explanations of the suspends' effects stored
            timings, plan_ms, load_ms, counts = [], [], [], None
            cpu: list[float] = []
            for _ in range(runs + 1):  # the first steady run warms caches and is not counted
                began = time.perf_counter()
                cpu0 = time.process_time()
                try:
                    with transaction.atomic():
                        t0 = time.perf_counter()
                        loaded = driver.load_snapshot(now)
                        t1 = time.perf_counter()
                        plan = policy.plan(loaded.snapshot)
                        t2 = time.perf_counter()
                        result = driver.apply_plan(loaded, plan, now)
                        raise _Rollback
                except _Rollback:
                    pass
                total = time.perf_counter() - began
                timings.append(total * 1000)
                cpu.append((time.process_time() - cpu0) * 1000)
                plan_ms.append((t2 - t1) * 1000)
                load_ms.append((t1 - t0) * 1000)
                counts = (len(result.started), len(result.suspended), result.explained)
            timings, plan_ms, load_ms = timings[1:], plan_ms[1:], load_ms[1:]
            ordered = sorted(timings)
            incremental = _incremental_passes(now, runs)
            results.append(
                {
                    "waiting": n_waiting,
                    "running": n_running,
                    "nodes": n_nodes,
                    "runs": runs,
                    "cold_ms": cold_ms,
                    "cold_starts": len(cold.started),
                    "cold_suspends": len(cold.suspended),
                    "cold_events": len(cold_events),
                    "cold_events_sent_ms": events_ms,
                    "median_ms": statistics.median(timings),
                    "cpu_ms": statistics.median(cpu[1:]),
                    "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
                    "load_ms": statistics.median(load_ms),
                    "plan_ms": statistics.median(plan_ms),
                    "starts": counts[0] if counts else 0,
                    "suspends": counts[1] if counts else 0,
                    "explanations_written": counts[2] if counts else 0,
                    **incremental,
                }
            )
    finally:
        connections.close_all()
        _recreate_database(drop_only=True)
    return results
