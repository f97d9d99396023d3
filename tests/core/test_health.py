"""/healthz and /readyz: answered whatever the Host header (probes use the pod IP), unready while
the database or Redis is down, ready again when they are back; the worker's passes as heartbeat."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import OperationalError, connection
from django.test import Client

from apps.core import health

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]

POD_IP = "10.42.7.13:8000"


class FakeRedis(socketserver.ThreadingTCPServer):
    """Just enough of Redis for PING, on a port of its own, that a test can stop and start."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.connections: set[socket.socket] = set()

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        self.connections.add(request)
        super().process_request(request, client_address)  # type: ignore[arg-type]

    def stop(self) -> None:
        """Like a Redis that goes down: no new connections, and the open ones are cut."""
        self.shutdown()
        self.server_close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while header := self.rfile.readline():  # a command: *<n>, then n bulk strings
                if not header.startswith(b"*"):
                    return
                words = []
                for _ in range(int(header[1:])):
                    self.rfile.readline()  # $<length>
                    words.append(self.rfile.readline().strip().upper())
                if words[:1] == [b"PING"]:
                    self.wfile.write(b"+PONG\r\n")
                elif words[:1] == [b"HELLO"]:
                    self.wfile.write(b"-ERR unknown command 'HELLO'\r\n")  # RESP2, like Redis 5
                else:
                    self.wfile.write(b"+OK\r\n")


@pytest.fixture
def fake_redis() -> Iterator[dict[str, object]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state: dict[str, object] = {"url": f"redis://127.0.0.1:{port}/0", "server": None}

    def start() -> None:
        server = FakeRedis(("127.0.0.1", port), FakeRedis.Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        state["server"] = server

    def stop() -> None:
        server = state["server"]
        assert isinstance(server, FakeRedis)
        server.stop()
        state["server"] = None

    state["start"], state["stop"] = start, stop
    start()
    yield state
    if state["server"] is not None:
        stop()
    health._redis_clients.clear()


def test_healthz_answers_a_pod_ip_host_that_other_pages_refuse():
    client = Client(HTTP_HOST=POD_IP)
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response["Cache-Control"] == "no-store"
    assert client.get("/api/schema/").status_code == 400  # DisallowedHost: what probes got before


def test_readyz_is_ready_with_a_pod_ip_host(settings):
    settings.REDIS_URL = ""
    response = Client(HTTP_HOST=POD_IP).get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["redis"] == {"ok": True}


def test_readyz_goes_unready_while_the_database_is_down_and_recovers(settings, monkeypatch):
    settings.REDIS_URL = ""
    client = Client(HTTP_HOST=POD_IP)

    def down(*args: object, **kwargs: object) -> object:
        raise OperationalError("connection refused")

    # The production profile checks through the connection pool (bounded wait), the embedded one
    # through the connection; tests/core/test_deploy_startup.py stops a real PostgreSQL link.
    pool = getattr(connection, "pool", None) if connection.vendor == "postgresql" else None
    if pool is not None:
        monkeypatch.setattr(pool, "connection", down)
    else:
        monkeypatch.setattr(connection, "cursor", down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False, "error": "OperationalError: connection refused"}
    assert client.get("/healthz").status_code == 200  # alive all the same: no restart for an outage
    monkeypatch.undo()
    assert client.get("/readyz").status_code == 200


def test_readyz_goes_unready_while_redis_is_down_and_recovers(settings, fake_redis):
    settings.REDIS_URL = fake_redis["url"]
    client = Client(HTTP_HOST=POD_IP)
    first = client.get("/readyz")
    assert first.status_code == 200, first.json()
    fake_redis["stop"]()  # type: ignore[operator]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in response.json()["checks"]["redis"]["error"]
    fake_redis["start"]()  # type: ignore[operator]
    assert client.get("/readyz").status_code == 200


def test_full_readiness_needs_recent_scheduling_and_reconcile_passes(settings):
    settings.REDIS_URL = ""
    settings.ROTA_READY_MAX_PASS_AGE_SECONDS = 60.0
    from django.core.cache import cache

    for name in health.PASS_NAMES:
        cache.delete(health.PASS_KEY.format(name=name))
    client = Client(HTTP_HOST=POD_IP)
    assert client.get("/readyz").status_code == 200  # web pods do not wait for the worker
    response = client.get("/readyz?full=1")
    assert response.status_code == 503
    assert response.json()["checks"]["scheduler_pass"] == {"ok": False, "age_seconds": None}

    health.record_pass("scheduler")
    health.record_pass("launcher")
    assert client.get("/readyz?full=1").status_code == 200
    ready, report = health.readiness(full=True, now=time.time() + 61)
    assert not ready
    assert report["checks"]["launcher_pass"]["ok"] is False
    assert report["checks"]["launcher_pass"]["age_seconds"] >= 61


def test_a_scheduling_pass_records_the_heartbeat():
    from django.core.cache import cache

    from apps.scheduler.tasks import schedule_pass

    cache.delete(health.PASS_KEY.format(name="scheduler"))
    before = time.time()
    assert schedule_pass()
    at = health.last_pass_at("scheduler")
    assert at is not None and at >= before
