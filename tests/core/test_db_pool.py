"""Database connections stay bounded under ASGI: a storm of clients never exhausts PostgreSQL.

Under ASGI every request runs its synchronous part in a thread of its own; with persistent
connections (``CONN_MAX_AGE``) each such thread kept a connection open after it was gone, and 20
clients drove one daphne past PostgreSQL's limit. The production profile uses Django's bounded
psycopg pool instead (``portal/settings.py``).
"""

from __future__ import annotations

import threading
import time

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from apps.accounts import services as account_services
from tests.factories import UserFactory

POSTGRES = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# Skipped before any fixture runs: the ASGI server fixture would otherwise start for nothing.
pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.slow,
    pytest.mark.skipif(not POSTGRES, reason="the connection pool is the production profile's (PostgreSQL)"),
]

CLIENTS = 50
STORM_SECONDS = 30.0  # the figure: 50 clients for 30 s (runs on the production profile only)


def test_production_profile_pools_connections_without_persistence():
    db = settings.DATABASES["default"]
    assert db["CONN_MAX_AGE"] == 0
    assert db["OPTIONS"]["pool"]["max_size"] == settings.DB_POOL_MAX_SIZE


def _server_connections(dsn: str, database: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database]
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_fifty_concurrent_clients_keep_connections_bounded_and_get_no_5xx(asgi_live_server):
    user = UserFactory(username="storm")
    raw = account_services.token_create(actor=user, name="storm", scope="all").raw
    params = connection.get_connection_params()
    database = connection.settings_dict["NAME"]
    dsn = psycopg.conninfo.make_conninfo(
        host=params.get("host") or "", port=params.get("port") or "", user=params.get("user") or "", dbname=database
    )
    if params.get("password"):
        dsn = psycopg.conninfo.make_conninfo(dsn, password=params["password"])

    stop = threading.Event()
    statuses: dict[int, int] = {}
    failures: list[str] = []
    samples: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        headers = {"Authorization": f"Bearer {raw}"}
        with httpx.Client(base_url=asgi_live_server.url, headers=headers, timeout=60) as http:
            while not stop.is_set():
                try:
                    response = http.get("/api/v1/experiments/")
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))
                    continue
                with lock:
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    def monitor() -> None:
        while not stop.is_set():
            samples.append(_server_connections(dsn, database))
            stop.wait(0.2)

    threads = [threading.Thread(target=client, name=f"storm-{i}", daemon=True) for i in range(CLIENTS)]
    watcher = threading.Thread(target=monitor, name="storm-monitor", daemon=True)
    watcher.start()
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + STORM_SECONDS
    while time.monotonic() < deadline and watcher.is_alive():
        stop.wait(0.2)  # the storm runs for a fixed time; nothing is asserted about how long requests took
    stop.set()
    for thread in threads:
        thread.join(60)
    watcher.join(10)
    samples.append(_server_connections(dsn, database))

    assert failures == []
    assert sum(statuses.values()) >= CLIENTS, statuses
    assert set(statuses) == {200}, statuses
    # Every connection to the test database from this process (the test's own, the server's
    # request threads, the realtime outbox) comes from the one pool.
    assert max(samples) <= settings.DB_POOL_MAX_SIZE, samples
