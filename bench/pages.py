"""Portal pages and API endpoints at the scale of a real cluster, on PostgreSQL behind daphne.

    .venv/bin/python -m bench.pages                       # 200 users, 100,000 jobs, 40,000 tags
    .venv/bin/python -m bench.pages --jobs 10000 --tags 4000 --requests 15   # a quick run
    .venv/bin/python -m bench.pages --keep       # seed once and keep the database ...
    .venv/bin/python -m bench.pages --reuse      # ... then only time (seeds if there is none)

Creates a scratch database (``ROTA_BENCH_DB``, default ``rota_bench_pages``; migrated), seeds it
with bulk ``COPY``: ``--users`` users in teams of ten (one of them, "heavy", owns ``--heavy-jobs``
jobs; one platform admin), ``--jobs`` jobs of which ``--running`` run and ``--waiting`` wait
(some suspended or held), the rest finished; about 1.47 attempts per job (earlier attempts
suspended or failed), one rank per node of every attempt that was scheduled (about 2.8 per
job), and ``--tags`` tags from a pool of 300 names. Then it starts one daphne process on the
production profile (Redis cache and channel layer: ``ROTA_BENCH_REDIS``) and fetches each page and
endpoint a researcher ("heavy") and an admin use, ``--requests`` warm times each after three
warm-up requests, over one keep-alive connection, and prints p50 / p95 / max of the wall time
seen by the client (server time plus the client's own few hundred microseconds) and the number
of SQL queries a warm request runs (counted in this process through Django's test client against
the same database). The closing verdict checks the targets of docs/PERFORMANCE.md (each deep
page against its first page too) and exits 1 on a miss. It prints the host's load average and
the time of a 10M-step Python loop, to compare hosts, and drops the database, stops daphne and
removes its files when done or interrupted (``--keep`` leaves the database for a later
``--reuse``, which migrates it, issues a new token and times it without seeding again; the sizes
are then those of the kept database, printed). The seed ends with ``VACUUM ANALYZE``, the state
autovacuum keeps a long-lived database in.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = os.environ.get("ROTA_BENCH_DB", "rota_bench_pages")
PG_ADMIN_URL = os.environ.get("ROTA_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ROTA_BENCH_REDIS", "redis://127.0.0.1:6379/13")
TAG_POOL = 300


def _environment(data: Path) -> dict[str, str]:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return {
        "ROTA_ENV": "production",
        "DATABASE_URL": f"{base}/{BENCH_DB}",
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "false",
        "ROTA_TASK_RUNNER": "inline",
        "ROTA_DATA_DIR": str(data),
        "ROTA_LOG_ROOT": str(data / "logs"),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "LOG_LEVEL": "WARNING",
    }


def _recreate_database(drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


# --- seeding ----------------------------------------------------------------------------------


@dataclass
class Seeded:
    heavy_id: int
    admin_id: int
    heavy_token: str
    heavy_job: int  # one of heavy's finished jobs with two attempts
    rows: dict[str, int]


def _copy(cursor: Any, model: Any, rows: list[dict[str, Any]]) -> int:
    """``COPY`` ``rows`` (field attname → value) into ``model``'s table; every other column gets
    the field's default (``now`` for auto timestamps, NULL where allowed)."""
    from django.db import models
    from psycopg.types.json import Jsonb

    if not rows:
        return 0
    given = set().union(*rows)
    now = datetime.now(UTC)
    columns: list[str] = []
    fillers: list[tuple[str, Any, bool]] = []  # attname, default, is json
    for f in model._meta.concrete_fields:
        if f.primary_key and f.attname not in given:
            continue  # the sequence numbers it
        columns.append(f.column)
        if getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
            default: Any = now
        elif f.has_default():
            default = f.get_default()
        elif f.null:
            default = None
        elif f.empty_strings_allowed:
            default = ""
        elif f.attname in given:
            default = None  # every row that needs it must carry it
        else:
            raise ValueError(f"{model.__name__}.{f.attname} needs a value")
        fillers.append((f.attname, default, isinstance(f, models.JSONField)))
    sql = f"COPY {model._meta.db_table} ({', '.join(columns)}) FROM STDIN"
    with cursor.copy(sql) as copy:
        for row in rows:
            values = []
            for attname, default, is_json in fillers:
                value = row.get(attname, default)
                values.append(Jsonb(value) if is_json and value is not None else value)
            copy.write_row(values)
    return len(rows)


def seed(args: argparse.Namespace) -> Seeded:
    """Write the data set (see the module docstring) in one transaction, mostly by ``COPY``."""
    from django.contrib.auth.models import Group
    from django.db import connection, transaction

    from apps.accounts import services as account_services
    from apps.accounts.models import User
    from apps.cluster.models import Environment, Node, NodeGroup
    from apps.experiments.choices import ChainStatus, QueueStatus, RankStatus, SuspendReason, WorkerStatus
    from apps.experiments.models import Attempt, Chain, ChainTag, Rank
    from apps.quotas.models import Quota

    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    with transaction.atomic():
        public, _ = Group.objects.get_or_create(name="public")
        env, _ = Environment.objects.get_or_create(name="default", defaults={"image": "python:3.11"})
        Quota.objects.get_or_create(
            group=public, kind="environment", environment=env, resource="environment:default", defaults={"value": 1}
        )
        teams = [Group.objects.create(name=f"team-{i:02d}") for i in range((args.users + 9) // 10)]
        users = User.objects.bulk_create(
            [
                User(username="heavy" if i == 0 else f"user{i:03d}", team=teams[i // 10], is_active=True)
                for i in range(args.users)
            ]
        )
        admin = User.objects.create(username="admin", is_superuser=True, is_staff=True)
        training = NodeGroup.objects.create(name="training")
        cpu = NodeGroup.objects.create(name="cpu")
        node_rows = [
            {"name": f"gpu-{i:05d}", "group_id": training.pk, "gpu_count": 8, "room": f"room-{i % 4}"}
            for i in range(args.nodes)
        ] + [{"name": f"cpu-{i:03d}", "group_id": cpu.pk, "gpu_count": 0, "room": "room-0"} for i in range(20)]
        Node.objects.bulk_create([Node(**row) for row in node_rows], batch_size=2000)
        gpu_nodes = list(Node.objects.filter(group=training).order_by("id").values_list("id", flat=True))
        for user in users[:40]:
            for level in (30, 20, 10):
                Quota.objects.create(
                    user=user,
                    kind="node",
                    node_group=training,
                    priority=level,
                    value=16,
                    resource=f"node:training:{level}",
                )

        # Owners: heavy gets --heavy-jobs, the others share the rest.
        others = [u.pk for u in users[1:]]
        owner_of = [users[0].pk] * args.heavy_jobs + [rng.choice(others) for _ in range(args.jobs - args.heavy_jobs)]
        rng.shuffle(owner_of)
        # Which jobs run and wait: heavy gets its share of both.
        order = list(range(args.jobs))
        rng.shuffle(order)
        running = set(order[: args.running])
        waiting = set(order[args.running : args.running + args.waiting])
        chain_id0 = 1
        attempt_id = 0
        chains: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        ranks: list[dict[str, Any]] = []
        free_nodes = list(gpu_nodes)
        heavy_job = 0
        for i in range(args.jobs):
            cid = chain_id0 + i
            created = now - timedelta(seconds=(args.jobs - i) * 600)
            live = i in running or i in waiting
            if i in running:
                node_count = rng.choice((1, 1, 2))
            else:
                node_count = rng.choices((1, 2, 4, 8), weights=(55, 25, 15, 5))[0]
            n_attempts = rng.choices((1, 2, 3), weights=(60, 33, 7))[0]
            if i in running:
                status = ChainStatus.RUNNING
            elif i in waiting:
                status = rng.choices((ChainStatus.WAITING, ChainStatus.SUSPENDED, ChainStatus.HELD), weights=(8, 1, 1))[
                    0
                ]
            else:
                status = rng.choices(
                    (ChainStatus.SUCCEEDED, ChainStatus.FAILED, ChainStatus.STOPPED, ChainStatus.CANCELED),
                    weights=(70, 15, 10, 5),
                )[0]
            if status == ChainStatus.SUSPENDED or status == ChainStatus.HELD:
                n_attempts = max(n_attempts, 2)
            priority = rng.choice((10, 20, 20, 30, 40, -1))
            for index in range(n_attempts):
                attempt_id += 1
                last = index == n_attempts - 1
                start = created + timedelta(seconds=60 + index * 3600)
                row: dict[str, Any] = {
                    "id": attempt_id,
                    "chain_id": cid,
                    "index": index,
                    "priority": priority,
                    "created_at": created + timedelta(seconds=index * 3600),
                }
                scheduled = True
                if not last:
                    row |= {
                        "queue_status": QueueStatus.FINISHED,
                        "worker_status": WorkerStatus.SUSPENDED,
                        "suspend_reason": SuspendReason.PREEMPTED,
                        "finished_at": start + timedelta(seconds=1800),
                    }
                elif i in running:
                    row |= {"queue_status": QueueStatus.SCHEDULED, "worker_status": WorkerStatus.RUNNING}
                elif i in waiting:
                    row |= {
                        "queue_status": QueueStatus.QUEUED,
                        "worker_status": WorkerStatus.QUEUED,
                        "pending_code": "quota",
                        "pending_message": "Waiting for quota.",
                        "queue_position": rng.randint(1, args.waiting),
                    }
                    scheduled = False
                else:
                    worker = {
                        ChainStatus.SUCCEEDED: WorkerStatus.SUCCEEDED,
                        ChainStatus.FAILED: WorkerStatus.FAILED,
                        ChainStatus.STOPPED: WorkerStatus.STOPPED,
                        ChainStatus.CANCELED: WorkerStatus.CANCELED,
                    }[status]
                    scheduled = status != ChainStatus.CANCELED
                    row |= {
                        "queue_status": QueueStatus.FINISHED,
                        "worker_status": worker,
                        "finished_at": start + timedelta(seconds=3000),
                    }
                if scheduled:
                    row |= {
                        "scheduled_at": start,
                        "started_at": start,
                        "effective_priority": max(priority, 10),
                        "quota_priority": max(priority, 10),
                    }
                    holds = last and i in running
                    for r in range(node_count):
                        node = free_nodes.pop() if holds else gpu_nodes[(cid * 7 + r) % len(gpu_nodes)]
                        ranks.append(
                            {
                                "attempt_id": attempt_id,
                                "rank": r,
                                "node_id": node,
                                "holds_node": holds,
                                "status": RankStatus.RUNNING if holds else RankStatus.SUCCEEDED,
                            }
                        )
                attempts.append(row)
            finished = not live
            chains.append(
                {
                    "id": cid,
                    "owner_id": owner_of[i],
                    "name": f"exp-{i:06d}",
                    "workspace": "/home/user/project",
                    "entrypoint": "train.py",
                    "node_group_id": training.pk,
                    "node_count": node_count,
                    "priority": priority,
                    "environment_id": env.pk,
                    "environment_name": "default",
                    "shared_with_team": i % 10 == 0,
                    "held": status == ChainStatus.HELD,
                    "finished": finished,
                    "status": status,
                    "restart_count": n_attempts - 1,
                    "latest_attempt_id": attempt_id,
                    "created_at": created,
                    "finished_at": created + timedelta(hours=n_attempts) if finished else None,
                }
            )
            if owner_of[i] == users[0].pk and finished and n_attempts == 2:
                heavy_job = cid
        tag_names = [f"tag-{n:03d}" for n in range(TAG_POOL)]
        tags: set[tuple[int, str]] = set()
        while len(tags) < min(args.tags, args.jobs * 5):
            tags.add((rng.randint(1, args.jobs), tag_names[min(TAG_POOL - 1, int(rng.expovariate(1 / 30)))]))
        with connection.cursor() as cursor:
            raw = cursor.cursor
            # The scheduler's change-log triggers are not needed for rows that exist before any
            # pass (its first pass reads everything): skip them while loading, as a restore would.
            cursor.execute("SET LOCAL session_replication_role = replica")
            counts["chains"] = _copy(raw, Chain, chains)
            counts["attempts"] = _copy(raw, Attempt, attempts)
            counts["ranks"] = _copy(raw, Rank, ranks)
            counts["tags"] = _copy(raw, ChainTag, [{"chain_id": c, "name": n} for c, n in sorted(tags)])
            for model in (Chain, Attempt, Rank, ChainTag):
                table = model._meta.db_table
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            cursor.execute("SET LOCAL session_replication_role = origin")
        token = account_services.token_create(actor=users[0], name="bench", scope="read_only").raw
    with connection.cursor() as cursor:
        # A database that has lived for months has been vacuumed by autovacuum: its visibility map
        # lets counts and key-only pages read indexes alone. Freshly COPYed rows have none yet.
        cursor.execute("VACUUM ANALYZE")
    counts["users"] = len(users) + 1
    return Seeded(users[0].pk, admin.pk, token, heavy_job, counts)


def reuse_seeded() -> Seeded | None:
    """The ``Seeded`` of a database kept by an earlier ``--keep`` run (a new token for "heavy"),
    or None when the database holds no seed."""
    from apps.accounts import services as account_services
    from apps.accounts.models import User
    from apps.experiments.models import Attempt, Chain, ChainTag, Rank

    heavy = User.objects.filter(username="heavy").first()
    admin = User.objects.filter(username="admin", is_superuser=True).first()
    if heavy is None or admin is None:
        return None
    # The job ``seed`` picks: heavy's last finished job with two attempts.
    job = Chain.objects.filter(owner=heavy, finished=True, restart_count=1).order_by("-id").first()
    if job is None:
        return None
    token = account_services.token_create(actor=heavy, name="bench", scope="read_only").raw
    counts = {
        "chains": Chain.objects.count(),
        "attempts": Attempt.objects.count(),
        "ranks": Rank.objects.count(),
        "tags": ChainTag.objects.count(),
        "users": User.objects.count(),
        "heavy_jobs": Chain.objects.filter(owner=heavy).count(),
    }
    return Seeded(heavy.pk, admin.pk, token, job.pk, counts)


def _database_exists() -> bool:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone() is not None


# --- serving and measuring ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError("daphne did not start")


@contextlib.contextmanager
def served(args: argparse.Namespace) -> Iterator[tuple[int, Seeded]]:
    """Scratch database, seeded, and one daphne process; yields (port, seeded). Cleans up."""
    data = Path(tempfile.mkdtemp(prefix="rota-bench-pages-"))
    env = _environment(data)
    os.environ.update(env)
    server: subprocess.Popen[bytes] | None = None
    keep, reuse = getattr(args, "keep", False), getattr(args, "reuse", False)
    try:
        reusing = reuse and _database_exists()
        if not reusing:
            _recreate_database()
        import django

        django.setup()
        from django.core.cache import cache
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)  # as scripts/run does
        cache.clear()
        kept = reuse_seeded() if reusing else None
        if kept is None:
            if reusing:  # an empty or half-made database: start again
                from django.db import connections

                connections.close_all()
                _recreate_database()
                call_command("migrate", verbosity=0)
            t0 = time.perf_counter()
            seeded = seed(args)
            print(f"seeded {seeded.rows} in {time.perf_counter() - t0:.1f} s", flush=True)
        else:
            seeded = kept
            args.jobs = seeded.rows["chains"]
            args.heavy_jobs = seeded.rows["heavy_jobs"]
            print(f"reusing the kept database {BENCH_DB}: {seeded.rows}", flush=True)
        port = args.port or _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "portal.asgi:application"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=open(data / "daphne.log", "wb"),  # noqa: SIM115 - closed with the process
            start_new_session=True,
        )
        _wait_for_port(port, 60)
        yield port, seeded
    except BaseException:
        with contextlib.suppress(OSError):
            print("--- daphne.log (tail) ---\n" + (data / "daphne.log").read_text()[-6000:], file=sys.stderr)
        raise
    finally:
        if server is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        if keep or reuse:
            print(f"kept the database {BENCH_DB} (drop it with: dropdb {BENCH_DB})", flush=True)
        else:
            _recreate_database(drop_only=True)
        shutil.rmtree(data, ignore_errors=True)


@dataclass
class Endpoint:
    label: str
    path: str
    who: str  # "heavy" (session), "admin" (session), "token" (heavy's API token)
    p95_target: float = 100.0
    p50_target: float | None = None
    deep_of: str | None = None  # the path of the first page this deep page must be no slower than


def endpoints(seeded: Seeded, args: argparse.Namespace) -> list[Endpoint]:
    heavy_pages = max(1, args.heavy_jobs // 25)
    all_pages = max(1, args.jobs // 25)
    deep = min(50, heavy_pages)
    admin_deep = min(2000, all_pages)
    api_deep = min(200, heavy_pages)
    job = seeded.heavy_job
    return [
        Endpoint(f"dashboard (a user with {args.heavy_jobs:,} jobs)", "/", "heavy", p50_target=60),
        Endpoint("experiments list, first page", "/experiments/", "heavy", p50_target=60),
        Endpoint(
            f"experiments list, page {deep}",
            f"/experiments/?page={deep}",
            "heavy",
            p50_target=60,
            deep_of="/experiments/",
        ),
        Endpoint("experiments list, admin, first page", "/experiments/?scope=all", "admin", p50_target=60),
        Endpoint(
            f"experiments list, admin, page {admin_deep:,}",
            f"/experiments/?scope=all&page={admin_deep}",
            "admin",
            p50_target=60,
            deep_of="/experiments/?scope=all",
        ),
        Endpoint("job detail", f"/experiments/{job}/", "heavy"),
        Endpoint("log page", f"/experiments/{job}/logs/", "heavy"),
        Endpoint("API experiments, first page", "/api/v1/experiments/", "token"),
        Endpoint(
            f"API experiments, page {api_deep}",
            f"/api/v1/experiments/?page={api_deep}",
            "token",
            deep_of="/api/v1/experiments/",
        ),
        Endpoint("API experiment detail", f"/api/v1/experiments/{job}/", "token"),
        Endpoint("OpenAPI schema", "/api/schema/", "token"),
        Endpoint("API me", "/api/v1/me/", "token"),
        Endpoint("API nodes", "/api/v1/nodes/", "token"),
    ]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(
    port: int, seeded: Seeded, args: argparse.Namespace, eps: list[Endpoint] | None = None
) -> list[dict[str, Any]]:
    """Time each endpoint (``eps``, else this module's ``endpoints``) as its user, over one connection."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.models import User

    clients: dict[str, Client] = {}
    headers: dict[str, dict[str, str]] = {}
    for who, uid in (("heavy", seeded.heavy_id), ("admin", seeded.admin_id)):
        client = Client()
        client.force_login(User.objects.get(pk=uid))
        clients[who] = client
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        headers[who] = {"Cookie": f"{settings.SESSION_COOKIE_NAME}={session}"}
    clients["token"] = Client(headers={"Authorization": f"Bearer {seeded.heavy_token}"})
    headers["token"] = {"Authorization": f"Bearer {seeded.heavy_token}"}

    results = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for ep in eps if eps is not None else endpoints(seeded, args):
        times: list[float] = []
        status = 0
        for i in range(3 + args.requests):
            t0 = time.perf_counter()
            conn.request("GET", ep.path, headers={"Host": "127.0.0.1", **headers[ep.who]})
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - t0) * 1000
            status = response.status
            if status != 200:
                raise RuntimeError(f"{ep.path}: HTTP {status}: {body[:300]!r}")
            if i >= 3:
                times.append(elapsed)
        clients[ep.who].get(ep.path)  # warm this process's caches too
        with CaptureQueriesContext(connection) as queries:
            response = clients[ep.who].get(ep.path)
        assert response.status_code == 200, (ep.path, response.status_code)
        results.append(
            {
                "endpoint": ep,
                "p50": statistics.median(times),
                "p95": _percentile(times, 0.95),
                "max": max(times),
                "queries": len(queries),
                "bytes": len(body),
            }
        )
        print(f"  {ep.label}: p50 {results[-1]['p50']:.1f} ms", flush=True)
    conn.close()
    return results


def host_figures() -> str:
    t0 = time.perf_counter()
    for _ in range(10_000_000):
        pass
    loop = time.perf_counter() - t0
    return f"load average {os.getloadavg()[0]:.2f}, 10M-step loop {loop:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--heavy-jobs", type=int, default=5_000, help="jobs of the researcher whose pages are timed")
    parser.add_argument("--tags", type=int, default=40_000)
    parser.add_argument("--running", type=int, default=1_000)
    parser.add_argument("--waiting", type=int, default=5_000)
    parser.add_argument("--nodes", type=int, default=1_500, help="GPU nodes (plus 20 CPU nodes)")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per endpoint")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database for a later --reuse")
    parser.add_argument(
        "--reuse", action="store_true", help="time the database kept by --keep (seed it if there is none); keeps it"
    )
    args = parser.parse_args()
    args.heavy_jobs = min(args.heavy_jobs, args.jobs // 2)
    args.running = min(args.running, args.jobs // 10)
    args.waiting = min(args.waiting, args.jobs // 5)
    sys.path.insert(0, str(ROOT))
    print(f"host: {host_figures()}", flush=True)
    with served(args) as (port, seeded):
        results = measure(port, seeded, args)
    print(f"host: {host_figures()}")
    print()
    print(f"{args.users} users, {args.jobs:,} jobs, {seeded.rows}; {args.requests} warm requests each, one daphne")
    print()
    print("| endpoint | p50 ms | p95 ms | max ms | queries |")
    print("|---|--:|--:|--:|--:|")
    misses = []
    p50_of = {r["endpoint"].path: r["p50"] for r in results}
    for r in results:
        ep: Endpoint = r["endpoint"]
        print(f"| {ep.label} | {r['p50']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | {r['queries']} |")
        if r["p95"] > ep.p95_target:
            misses.append(f"{ep.label}: p95 {r['p95']:.1f} > {ep.p95_target:.0f} ms")
        if ep.p50_target is not None and r["p50"] > ep.p50_target:
            misses.append(f"{ep.label}: p50 {r['p50']:.1f} > {ep.p50_target:.0f} ms")
        first = p50_of.get(ep.deep_of or "")
        # "No slower than the first page", with the run-to-run noise of a shared host allowed for.
        if first is not None and r["p50"] > first * 1.25 + 2:
            misses.append(f"{ep.label}: p50 {r['p50']:.1f} ms vs the first page's {first:.1f} ms")
    print()
    print("verdict: " + ("all targets met" if not misses else "missed: " + "; ".join(misses)))
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
