"""Per-process websocket series on /metrics: open connections by endpoint and log lines sent."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from prometheus_client import REGISTRY

from tests.realtime.conftest import communicator, contents, finish, log_data, receive_until, run

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def value(name: str, endpoint: str) -> float:
    return REGISTRY.get_sample_value(name, {"endpoint": endpoint}) or 0.0


@pytest.fixture
def job(cluster, submit, user):
    chain = submit(user)
    attempt = run(chain)
    return chain, attempt.pk


async def test_websocket_connections_and_log_lines_are_counted(ws_app, job, user, token_for, log_store):
    chain, attempt_id = job
    with log_store.writer(str(chain.pk), attempt_id, 0) as writer:
        for line in ("one", "two", "three"):
            writer.write_line(line)
    await database_sync_to_async(finish)(chain, "failed")
    open_before = value("rota_websocket_connections", "events")
    lines_before = value("rota_log_lines_streamed_total", "events")
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    assert value("rota_websocket_connections", "events") == open_before + 1
    await comm.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "x"})
    messages = await receive_until(comm, lambda m: bool(m) and m[-1]["type"] == "log.end")
    assert contents(log_data(messages)) == ["one", "two", "three"]
    assert value("rota_log_lines_streamed_total", "events") == lines_before + 3
    await comm.disconnect()
    assert value("rota_websocket_connections", "events") == open_before


async def test_a_refused_socket_is_not_counted(ws_app):
    before = value("rota_websocket_connections", "events")
    comm = communicator(ws_app, "/ws/events/")
    connected, _ = await comm.connect()
    assert value("rota_websocket_connections", "events") == before
    if connected:
        await comm.disconnect()
    assert value("rota_websocket_connections", "events") == before
