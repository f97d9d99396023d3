"""Websocket test helpers: the real ASGI stack (Origin, session/token auth, routing), a log store
per test, fast tailer intervals, and a channel layer flushed between tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connections, transaction

from apps.accounts import services as account_services
from apps.experiments import lifecycle
from apps.experiments.choices import RankStatus, WorkerStatus
from apps.experiments.models import Attempt, Chain

ORIGIN = b"http://testserver"
# How long a test waits for a handshake or a message that must come. Channels' default is 1 s, which a
# loaded CI host (several xdist workers, daphne threads, Redis) can exceed without anything being wrong;
# checks that nothing arrives (receive_nothing) keep their own short windows.
PATIENCE = 15.0


class Communicator(WebsocketCommunicator):
    """A WebsocketCommunicator that waits PATIENCE seconds, not one, for what must arrive."""

    async def connect(self, timeout: float = PATIENCE) -> Any:
        return await super().connect(timeout)

    async def receive_output(self, timeout: float = PATIENCE) -> Any:
        return await super().receive_output(timeout)

    async def receive_from(self, timeout: float = PATIENCE) -> Any:
        return await super().receive_from(timeout)

    async def receive_json_from(self, timeout: float = PATIENCE) -> Any:
        return await super().receive_json_from(timeout)

    async def disconnect(self, code: int = 1000, timeout: float = PATIENCE) -> None:
        await super().disconnect(code, timeout)


@pytest.fixture
def ws_app() -> Any:
    from portal.routing import build_application

    return build_application(http_app=None)


@pytest.fixture(autouse=True)
def _clean_up_after_sockets() -> Any:
    """Flush the in-memory channel layer (it caches queues per event loop; every test has its own loop) and
    close the database connection of the thread consumers query in (kept open in production)."""
    yield
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        async_to_sync(layer.flush)()
    # Redis needs no flush: channel names are random, so a test's leftovers (which expire) reach
    # nobody else; and flushing would close the pools of other threads' event loops (the realtime
    # outbox's, the test server's) from this one.
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def log_store(settings, tmp_path):
    from apps.logs.store import get_log_store

    settings.ROTA_LOG_ROOT = tmp_path / "logs"
    settings.ROTA_REALTIME = {"LOG_POLL_SECONDS": 0.02, "STATE_POLL_SECONDS": 0.1, "VIEWER_BUFFER_BYTES": 128 * 1024}
    get_log_store.cache_clear()
    yield get_log_store()
    get_log_store.cache_clear()


@pytest.fixture
def token_for() -> Callable[..., str]:
    def make(user: Any, scope: str = "all") -> str:
        return account_services.token_create(actor=user, name=f"ws-{time.monotonic_ns()}", scope=scope).raw

    return make


@pytest.fixture
def cookie_for(settings) -> Callable[[Any], str]:
    from django.test import Client

    def make(user: Any) -> str:
        client = Client()
        client.force_login(user)
        return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    return make


def communicator(
    app: Any,
    path: str,
    *,
    token: str | None = None,
    cookie: str | None = None,
    origin: bytes | None = ORIGIN,
    token_in: str = "protocol",  # noqa: S107 - where the token goes, not a token
    subprotocols: list[str] | None = None,
) -> Communicator:
    headers: list[tuple[bytes, bytes]] = []
    protocols = list(subprotocols or [])
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie is not None:
        headers.append((b"cookie", cookie.encode()))
    if token is not None:
        if token_in == "header":
            headers.append((b"authorization", f"Bearer {token}".encode()))
        else:
            protocols = ["rota.v1", f"rota.token.{token}", *protocols]
    return Communicator(app, path, headers=headers, subprotocols=protocols)


async def receive_until(
    comm: WebsocketCommunicator, done: Callable[[list[dict[str, Any]]], bool], timeout: float = PATIENCE
) -> list[dict[str, Any]]:
    """Messages received until ``done(messages)`` holds; fails after ``timeout`` seconds (what must
    arrive gets ``PATIENCE``, like the communicator's own waits)."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(messages):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out; received so far: {messages!r}"[:2000])
        try:
            messages.append(await comm.receive_json_from(timeout=left))
        except TimeoutError:
            raise AssertionError(f"timed out; received so far: {messages!r}"[:2000]) from None
    return messages


def log_data(messages: list[dict[str, Any]]) -> str:
    return "".join(m["data"] for m in messages if m["type"] == "log.lines")


def contents(data: str) -> list[str]:
    """The lines' content, without timestamps."""
    from apps.logs.store import split_timestamp

    return [split_timestamp(line)[1] for line in data.splitlines()]


# --- playing the launcher (sync: call through database_sync_to_async in async tests) -----------


def latest_attempt(chain: Chain) -> Attempt:
    chain.refresh_from_db()
    return Attempt.objects.get(pk=chain.latest_attempt_id)


def run(chain: Chain) -> Attempt:
    attempt = latest_attempt(chain)
    assert attempt.worker_status == WorkerStatus.STARTING, attempt.worker_status
    for rank in attempt.ranks.all():
        lifecycle.rank_update(attempt_id=attempt.pk, rank=rank.rank, status=RankStatus.RUNNING)
    assert lifecycle.attempt_mark_running(attempt_id=attempt.pk)
    return latest_attempt(chain)


def finish(chain: Chain, status: str = WorkerStatus.SUCCEEDED) -> None:
    assert lifecycle.attempt_mark_finished(attempt_id=latest_attempt(chain).pk, status=status)


def suspend_and_requeue(chain: Chain) -> Attempt:
    """The scheduler suspends the running attempt; it ends; the next attempt is queued (and placed)."""
    from apps.experiments.choices import SuspendReason

    attempt = latest_attempt(chain)
    with transaction.atomic():  # as the scheduler driver does
        assert lifecycle.attempt_request_suspend(attempt_id=attempt.pk, reason=SuspendReason.PREEMPTED)
        lifecycle.sync_chain(chain_id=chain.pk)
    nxt = lifecycle.attempt_mark_suspended(attempt_id=attempt.pk)
    assert nxt is not None
    return nxt
