"""Live logs: backlog from a cursor then new lines in order, across attempts exactly as the HTTP
API pages them, one shared tailer per (chain, rank), slow viewers fall behind alone, and a
finished job's log ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from apps.experiments import lifecycle
from apps.logs import store as logstore
from apps.logs.tailer import get_hub
from portal.realtime import outbox
from tests.realtime.conftest import (
    PATIENCE,
    communicator,
    contents,
    finish,
    latest_attempt,
    log_data,
    receive_until,
    run,
    suspend_and_requeue,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def write(store: logstore.LogStore, chain_id: int, attempt_id: int, lines: list[str]) -> None:
    with store.writer(str(chain_id), attempt_id, 0) as writer:
        for line in lines:
            writer.write_line(line)


def line_count(messages: list[dict[str, Any]]) -> int:
    return len(contents(log_data(messages)))


async def until_attached(count: int, timeout: float = PATIENCE) -> Any:
    """The (single) tailer once ``count`` viewers follow it live."""
    hub = get_hub()
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        tailers = list(hub.tailers.values())
        if len(tailers) == 1 and len(tailers[0].viewers) == count:
            return tailers[0]
        assert asyncio.get_running_loop().time() < deadline, f"tailers: {hub.tailers}"
        await asyncio.sleep(0.01)


@pytest.fixture
def job(cluster, submit, user):
    """A running one-node job of ``user``: (chain, attempt id)."""
    chain = submit(user)
    attempt = run(chain)
    return chain, attempt.pk


async def test_follow_sends_the_backlog_from_the_cursor_then_new_lines_in_order(
    ws_app, job, user, token_for, log_store
):
    chain, attempt_id = job
    write(log_store, chain.pk, attempt_id, [f"line {i}" for i in range(5)])
    raw = log_store.path(str(chain.pk), attempt_id, 0).read_bytes()
    offset = sum(len(line) for line in raw.splitlines(keepends=True)[:2])
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    await comm.send_json_to(
        {"action": "follow_log", "chain": chain.pk, "rank": 0, "cursor": f"{attempt_id}:{offset}", "stream": "main"}
    )
    backlog = await receive_until(comm, lambda m: line_count(m) >= 3)
    assert contents(log_data(backlog)) == ["line 2", "line 3", "line 4"]
    assert log_data(backlog) == raw[offset:].decode()

    for batch in range(4):
        write(log_store, chain.pk, attempt_id, [f"line {5 + batch * 5 + i}" for i in range(5)])
        await asyncio.sleep(0.03)
    live = await receive_until(comm, lambda m: line_count(m) >= 20)
    assert contents(log_data(live)) == [f"line {i}" for i in range(5, 25)]
    size = log_store.size(str(chain.pk), attempt_id, 0)
    assert live[-1]["cursor"] == f"{attempt_id}:{size}"
    assert all((m["type"], m["stream"], m["chain"], m["rank"]) == ("log.lines", "main", chain.pk, 0) for m in live)
    assert await comm.receive_nothing()
    await comm.disconnect()


async def test_cli_socket_sends_the_tail_follows_and_ends_when_the_job_finishes(
    ws_app, job, user, token_for, log_store
):
    chain, attempt_id = job
    write(log_store, chain.pk, attempt_id, [f"step {i}" for i in range(10)])
    lines = log_store.path(str(chain.pk), attempt_id, 0).read_bytes().splitlines(keepends=True)
    comm = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=await database_sync_to_async(token_for)(user))
    assert await comm.connect() == (True, "rota.v1")
    await comm.send_json_to({"tail": sum(len(line) for line in lines[-3:])})
    tail = await receive_until(comm, lambda m: line_count(m) >= 3)
    assert contents(log_data(tail)) == ["step 7", "step 8", "step 9"]
    assert "stream" not in tail[0]

    write(log_store, chain.pk, attempt_id, ["step 10", "step 11"])
    await receive_until(comm, lambda m: line_count(m) >= 2)
    write(log_store, chain.pk, attempt_id, ["last words"])
    await database_sync_to_async(finish)(chain)
    rest = await receive_until(comm, lambda m: bool(m) and m[-1]["type"] == "log.end")
    assert contents(log_data(rest)) == ["last words"]
    assert rest[-1] == {"type": "log.end", "chain": chain.pk, "rank": 0, "status": "succeeded"}
    assert await comm.receive_output() == {"type": "websocket.close", "code": 1000}
    await comm.disconnect()


def hold(chain: Any) -> None:
    """The owner suspends the running job; it stops; the chain is requeued held."""
    from apps.experiments import services

    services.experiment_suspend(actor=chain.owner, chain=chain)
    assert lifecycle.attempt_mark_suspended(attempt_id=latest_attempt(chain).pk) is not None


async def test_cli_socket_says_the_status_when_live_and_when_it_changes_after_the_lines_before_it(
    ws_app, job, user, token_for, log_store
):
    chain, attempt_id = job
    write(log_store, chain.pk, attempt_id, ["step 1"])
    comm = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    await comm.send_json_to({})
    first = await receive_until(comm, lambda m: bool(m) and m[-1]["type"] == "log.status")
    assert contents(log_data(first)) == ["step 1"]
    assert first[-1] == {"type": "log.status", "chain": chain.pk, "rank": 0, "status": "running"}

    # The job writes its last lines and is suspended at once: the lines still come first.
    write(log_store, chain.pk, attempt_id, ["saving checkpoint", "saved"])
    await database_sync_to_async(hold)(chain)
    rest = await receive_until(comm, lambda m: bool(m) and m[-1].get("status") == "held")
    assert contents(log_data(rest)) == ["saving checkpoint", "saved"]
    statuses = [m["status"] for m in rest if m["type"] == "log.status"]
    assert statuses[-1] == "held" and set(statuses) <= {"suspending", "held"}
    assert rest.index(next(m for m in rest if m["type"] == "log.status")) > max(
        i for i, m in enumerate(rest) if m["type"] == "log.lines"
    )
    assert await comm.receive_nothing(0.3)  # held is not the end: a resumed job is followed on
    await comm.disconnect()

    # The page's socket has the chain's events for this; its log streams carry no status.
    page = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await page.connect())[0]
    await page.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "s"})
    backlog = await receive_until(page, lambda m: line_count(m) >= 3)
    assert await page.receive_nothing(0.3)
    assert {m["type"] for m in backlog} == {"log.lines"}
    await page.disconnect()


async def test_viewers_learn_the_status_without_a_query_each_when_they_attach_or_it_changes(
    ws_app, job, user, token_for, log_store, monkeypatch
):
    """The status a CLI socket is sent comes from the tailer's state, loaded once for all its
    viewers: a query per viewer (to read the lines before it first) made 500 viewers on one process
    wait seconds behind 500 database round trips whenever they attached or the status changed."""
    chain, attempt_id = job
    token = await database_sync_to_async(token_for)(user)
    hub = get_hub()
    refreshed: list[int] = []
    real_refresh = hub.refresh

    async def counting_refresh(tailer: Any) -> None:
        refreshed.append(tailer.chain_id)
        await real_refresh(tailer)

    monkeypatch.setattr(hub, "refresh", counting_refresh)
    viewers = [communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=token) for _ in range(6)]
    for comm in viewers:
        assert (await comm.connect())[0]
        await comm.send_json_to({"tail": 0})
    await until_attached(6)
    for comm in viewers:
        got = await receive_until(comm, lambda m: bool(m) and m[-1]["type"] == "log.status")
        assert got == [{"type": "log.status", "chain": chain.pk, "rank": 0, "status": "running"}]

    write(log_store, chain.pk, attempt_id, ["saving checkpoint"])
    await database_sync_to_async(hold)(chain)
    for comm in viewers:
        got = await receive_until(comm, lambda m: bool(m) and m[-1].get("status") == "held")
        assert contents(log_data(got)) == ["saving checkpoint"]  # the line before the change first
        assert got.index(next(m for m in got if m["type"] == "log.status")) > 0
    assert refreshed == []
    for comm in viewers:
        await comm.disconnect()


async def test_a_finished_jobs_log_is_sent_whole_then_ends(ws_app, job, user, token_for, log_store):
    chain, attempt_id = job
    write(log_store, chain.pk, attempt_id, ["only line"])
    await database_sync_to_async(finish)(chain, "failed")
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    await comm.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "x"})
    messages = await receive_until(comm, lambda m: bool(m) and m[-1]["type"] == "log.end")
    assert contents(log_data(messages)) == ["only line"]
    assert messages[-1] == {"type": "log.end", "stream": "x", "chain": chain.pk, "rank": 0, "status": "failed"}
    assert await comm.receive_nothing()
    await comm.disconnect()


async def test_follow_crosses_attempts_exactly_like_the_http_pages(ws_app, job, user, token_for, log_store):
    chain, first = job
    write(log_store, chain.pk, first, ["first 0", "first 1"])
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    await comm.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "cursor": None, "stream": "live"})
    received = await receive_until(comm, lambda m: line_count(m) >= 2)

    second = (await database_sync_to_async(suspend_and_requeue)(chain)).pk
    write(log_store, chain.pk, second, ["second 0", "second 1"])
    received += await receive_until(comm, lambda m: any("second 1" in x.get("data", "") for x in m))
    received = [m for m in received if m["type"].startswith("log.")]  # chain events come too
    expected = log_store.read_chain(str(chain.pk), [first, second], 0, limit=1 << 20).data
    assert "──── attempt 2 (id " in expected
    assert log_data(received) == expected
    assert received[-1]["cursor"] == f"{second}:{log_store.size(str(chain.pk), second, 0)}"

    # A viewer arriving later reads the same from the files (catch-up path), and from a cursor too.
    await comm.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "late"})
    late = await receive_until(comm, lambda m: log_data(m) == expected)
    assert {m["stream"] for m in late if m["type"].startswith("log.")} == {"late"}
    await comm.send_json_to(
        {"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "mid", "cursor": f"{first}:0"}
    )
    mid = await receive_until(comm, lambda m: log_data(m) == expected)
    assert {m["stream"] for m in mid if m["type"].startswith("log.")} == {"mid"}

    await database_sync_to_async(run)(chain)
    await database_sync_to_async(finish)(chain)
    ends = await receive_until(comm, lambda m: len([x for x in m if x["type"] == "log.end"]) == 3)
    assert {(m["stream"], m["status"]) for m in ends if m["type"] == "log.end"} == {
        ("live", "succeeded"),
        ("late", "succeeded"),
        ("mid", "succeeded"),
    }
    assert not [m for m in ends if m["type"] == "log.lines"]
    await comm.disconnect()


async def test_one_tailer_reads_each_write_once_however_many_viewers(
    ws_app, job, user, token_for, log_store, monkeypatch
):
    chain, attempt_id = job
    token = await database_sync_to_async(token_for)(user)
    viewers = [communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=token) for _ in range(5)]
    for comm in viewers:
        assert (await comm.connect())[0]
        await comm.send_json_to({"tail": 0})
    tailer = await until_attached(5)

    opened: list[object] = []
    real_open = logstore._open_raw

    def counting_open(path):
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(logstore, "_open_raw", counting_open)
    for k in range(6):
        write(log_store, chain.pk, attempt_id, [f"write {k}"])
        for comm in viewers:
            got = await receive_until(comm, lambda m: line_count(m) >= 1)
            assert contents(log_data(got)) == [f"write {k}"]
    # Six writes, six reads of the file, for five viewers (HAI: one poll per subscriber).
    assert len(opened) == 6
    assert tailer.reads == 6
    assert list(get_hub().tailers.values()) == [tailer]
    for comm in viewers:
        await comm.disconnect()
    assert get_hub().tailers == {}


def gated(app: Any, gate: asyncio.Event) -> Any:
    """The app, but frames to ``/ws/logs/`` sockets wait for ``gate``: a viewer on a stalled network."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["path"].startswith("/ws/logs/"):

            async def slow_send(message: dict[str, Any]) -> None:
                if message["type"] == "websocket.send":
                    await gate.wait()
                await send(message)

            return await app(scope, receive, slow_send)
        return await app(scope, receive, send)

    return wrapped


async def test_a_slow_viewer_falls_behind_without_stalling_a_fast_one(ws_app, job, user, token_for, log_store):
    chain, attempt_id = job
    gate = asyncio.Event()
    app = gated(ws_app, gate)
    token = await database_sync_to_async(token_for)(user)
    slow = communicator(app, f"/ws/logs/{chain.pk}/0/", token=token)
    fast = communicator(app, "/ws/events/", token=token)
    assert (await slow.connect())[0] and (await fast.connect())[0]
    await slow.send_json_to({"tail": 0})
    await fast.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "tail": 0, "stream": "f"})
    tailer = await until_attached(2)

    total = 800  # ~260 KB: twice the viewer buffer (128 KiB in these tests)
    for batch in range(0, total, 50):
        write(log_store, chain.pk, attempt_id, [f"{n:04d} " + "x" * 290 for n in range(batch, batch + 50)])
        await asyncio.sleep(0.02)
    got = await receive_until(fast, lambda m: line_count(m) >= total, timeout=10)
    assert [line[:4] for line in contents(log_data(got))] == [f"{n:04d}" for n in range(total)]
    assert {m["type"] for m in got} == {"log.lines"}
    assert len(tailer.viewers) == 1  # the slow one was detached; its buffer dropped

    gate.set()  # the network recovers: it gets what it had taken, then where to resume
    before = await receive_until(slow, lambda m: bool(m) and m[-1]["type"] == "log.behind")
    resume = before[-1]["cursor"]
    assert before[-1] == {"type": "log.behind", "chain": chain.pk, "rank": 0, "cursor": resume}
    assert line_count(before) < total
    await slow.send_json_to({"cursor": resume})
    whole = log_store.path(str(chain.pk), attempt_id, 0).read_bytes().decode()
    after = await receive_until(slow, lambda m: log_data(before) + log_data(m) == whole, timeout=10)
    assert after[-1]["cursor"] == f"{attempt_id}:{len(whole.encode())}"
    await slow.disconnect()
    await fast.disconnect()


async def test_bad_cursors_and_ranks_get_a_clear_error(ws_app, job, user, token_for, log_store):
    chain, attempt_id = job
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    for fields, code in (
        ({"cursor": "nonsense"}, "bad_request"),
        ({"cursor": f"{attempt_id + 99}:0"}, "bad_request"),
        ({"tail": -1}, "bad_request"),
        ({"rank": 3}, "not_found"),
    ):
        await comm.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "s", **fields})
        reply = await comm.receive_json_from()
        assert (reply["type"], reply["code"], reply["stream"]) == ("error", code, "s"), fields
    await comm.disconnect()


async def test_unfollow_stops_the_stream_and_the_tailer(ws_app, job, user, token_for, log_store):
    chain, attempt_id = job
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    await comm.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "tail": 0, "stream": "s"})
    await until_attached(1)
    await comm.send_json_to({"action": "unfollow_log", "stream": "s"})
    for _ in range(100):
        if not get_hub().tailers:
            break
        await asyncio.sleep(0.01)
    assert get_hub().tailers == {}
    write(log_store, chain.pk, attempt_id, ["nobody reads this"])
    assert await comm.receive_nothing(0.2)
    await comm.disconnect()


async def test_cli_socket_sends_nothing_until_asked_then_only_what_was_asked(
    ws_app, job, user, token_for, log_store, monkeypatch
):
    """A client whose request arrives late (a busy server) gets no log it did not ask for: the
    server used to start from the beginning on its own after ``FIRST_MESSAGE_WAIT``, then again
    from where the request said — every earlier line twice-sent as far as the client knew."""
    from apps.experiments import consumers

    monkeypatch.setattr(consumers, "FIRST_MESSAGE_WAIT", 0.05, raising=False)  # was the delay
    chain, attempt_id = job
    write(log_store, chain.pk, attempt_id, ["one", "two"])
    comm = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    assert await comm.receive_nothing(0.3)
    assert get_hub().tailers == {}
    await comm.send_json_to({"tail": 0})
    await until_attached(1)
    write(log_store, chain.pk, attempt_id, ["three"])
    got = await receive_until(comm, lambda m: line_count(m) >= 1 and any(x["type"] == "log.status" for x in m))
    assert (sorted(m["type"] for m in got), contents(log_data(got))) == (["log.lines", "log.status"], ["three"])
    await comm.send_json_to({})  # the beginning, when asked for
    got = await receive_until(comm, lambda m: line_count(m) >= 3 and m[-1]["type"] == "log.status")
    assert contents(log_data(got)) == ["one", "two", "three"]
    assert await comm.receive_nothing(0.1)
    await comm.disconnect()


def append_raw(store: logstore.LogStore, chain_id: int, attempt_id: int, data: bytes) -> None:
    """Append bytes as they are: half a line is what a reader sees while the kernel copies one in."""
    with open(store.path(str(chain_id), attempt_id, 0), "ab") as f:
        f.write(data)


async def test_viewers_joining_a_live_tailer_get_every_later_line_once_and_whole(
    ws_app, job, user, token_for, log_store
):
    chain, attempt_id = job
    token = await database_sync_to_async(token_for)(user)
    write(log_store, chain.pk, attempt_id, ["before 0", "before 1"])
    lines: list[str] = []  # every line completed after the first join, in order
    joined: list[tuple[Any, int]] = []  # (viewer, index in ``lines`` of the first line it must get)
    for turn in range(4):
        # Half a line is in the file as the viewer joins (and as the tailer polls): the line counts
        # as written after the join, and reaches every viewer whole, in one message.
        append_raw(log_store, chain.pk, attempt_id, f"[2026-12-03 08:00:0{turn}.000000] half {turn}".encode())
        comm = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=token)
        assert (await comm.connect())[0]
        await comm.send_json_to({"tail": 0})
        joined.append((comm, len(lines)))
        tailer = await until_attached(len(joined))
        reads = tailer.reads
        for _ in range(500):
            if tailer.reads > reads:
                break
            await asyncio.sleep(0.01)
        assert tailer.reads > reads, "the tailer did not poll the half line"
        append_raw(log_store, chain.pk, attempt_id, b" done\n")
        lines.append(f"half {turn} done")
        write(log_store, chain.pk, attempt_id, [f"turn {turn} line {i}" for i in range(3)])
        lines += [f"turn {turn} line {i}" for i in range(3)]
    # The job ends: each socket's stream ends too (``log.end``, then close), so all it was ever sent
    # can be checked, not just what came within a moment (its status may come after the lines).
    await database_sync_to_async(finish)(chain)
    for comm, first in joined:
        got = await receive_until(comm, lambda m: bool(m) and m[-1]["type"] == "log.end", timeout=30)
        assert await comm.receive_output(timeout=10) == {"type": "websocket.close", "code": 1000}
        assert contents(log_data(got)) == lines[first:]
        pieces = [m["data"] for m in got if m["type"] == "log.lines"]
        assert [piece[-1] for piece in pieces] == ["\n"] * len(pieces)
        assert {m["type"] for m in got[:-1]} <= {"log.lines", "log.status"}
        statuses = [m["status"] for m in got if m["type"] == "log.status"]
        assert statuses in ([], ["running"], ["succeeded"], ["running", "succeeded"])  # each change once
        assert got[-1]["status"] == "succeeded"


async def test_the_transport_probe_reads_daphnes_unsent_bytes():
    """Under daphne, ASGI sends never wait; the probe sees what Twisted (and autobahn) still hold."""
    import functools

    from apps.experiments.consumers import transport_backlog_probe

    class Transport:
        dataBuffer = b"x" * 1000  # Twisted's attribute names
        offset = 200
        _tempDataLen = 50

    class Protocol:
        transport = Transport()
        send_queue = [(b"y" * 30, False)]

    def handle_reply(protocol, message):
        return None

    probe = transport_backlog_probe(functools.partial(handle_reply, Protocol()))
    assert probe is not None
    assert probe() == 800 + 50 + 30
    assert transport_backlog_probe(None) is None
    assert transport_backlog_probe(handle_reply) is None


async def test_a_broken_tailer_tells_its_viewers_instead_of_going_silent(ws_app, job, user, token_for, log_store):
    chain, attempt_id = job
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    await comm.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "tail": 0, "stream": "s"})
    tailer = await until_attached(1)

    def unreadable(*args, **kwargs):
        raise PermissionError("log store unreadable")

    tailer.hub.store.read = unreadable  # this test's store instance only
    write(log_store, chain.pk, attempt_id, ["never delivered"])
    reply = await comm.receive_json_from()
    assert (reply["type"], reply["code"], reply["stream"]) == ("error", "internal", "s")
    assert get_hub().tailers == {}
    await comm.disconnect()


async def test_a_held_next_attempt_gets_its_separator_only_once_it_runs_as_over_http(
    ws_app, job, user, token_for, log_store, make_client
):
    from apps.experiments import lifecycle, services

    chain, first = job
    write(log_store, chain.pk, first, ["before the suspend"])
    comm = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    await comm.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "s"})
    received = await receive_until(comm, lambda m: line_count(m) >= 1)

    def suspend_by_owner() -> int:
        services.experiment_suspend(actor=user, chain=chain)
        lifecycle.attempt_mark_suspended(attempt_id=first)  # the processes are gone; the next attempt is held
        return latest_attempt(chain).pk

    second = await database_sync_to_async(suspend_by_owner)()
    await asyncio.sleep(0.3)  # several state polls: the held attempt must not show up
    received += await receive_until(comm, lambda m: len(m) >= 3)  # the status events, no log
    assert not [m for m in received if m["type"] == "log.lines" and "attempt 2" in m["data"]]

    await database_sync_to_async(lambda: services.experiment_resume(actor=user, chain=chain))()
    await database_sync_to_async(run)(chain)
    write(log_store, chain.pk, second, ["after the resume"])
    received += await receive_until(comm, lambda m: "after the resume" in log_data(m))
    client = await database_sync_to_async(make_client)(user)
    page = await database_sync_to_async(lambda: client.get(f"/api/v1/experiments/{chain.pk}/logs/").json())()
    assert page["data"] == log_data(received)
    assert contents(page["data"])[1].startswith("──── attempt 2 (id ")
    await comm.disconnect()


async def test_unsharing_cuts_a_team_mate_off_the_chains_events_and_logs_at_once(
    ws_app, job, user, other_user, token_for, log_store
):
    """A team-mate subscribed to a shared chain and following its log over both sockets: when the
    owner unshares, the subscription and the follows end, and nothing more of the chain arrives."""
    from django.contrib.auth.models import Group

    from apps.experiments import services

    chain, attempt_id = job

    def share() -> None:
        team = Group.objects.create(name="vision")
        for member in (user, other_user):
            member.team = team
            member.save(update_fields=["team"])
        services.experiment_share(user=user, chain=chain, shared=True)

    await database_sync_to_async(share)()
    # The job's own events (started, shared) leave through the outbox's thread: let them go before the
    # team-mate subscribes, or one can arrive ahead of the "subscribed" answer on a slow host.
    assert await asyncio.to_thread(outbox.flush, 10.0)
    write(log_store, chain.pk, attempt_id, ["shared 1"])
    token = await database_sync_to_async(token_for)(other_user)
    page = communicator(ws_app, "/ws/events/", token=token)
    assert (await page.connect())[0]
    await page.send_json_to({"action": "subscribe", "chain": chain.pk})
    assert await page.receive_json_from() == {"type": "subscribed", "chain": chain.pk}
    await page.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "s"})
    assert contents(log_data(await receive_until(page, lambda m: line_count(m) >= 1))) == ["shared 1"]
    cli = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=token)
    assert (await cli.connect())[0]
    await cli.send_json_to({})
    assert contents(log_data(await receive_until(cli, lambda m: line_count(m) >= 1))) == ["shared 1"]

    await database_sync_to_async(services.experiment_share)(user=user, chain=chain, shared=False)
    gone = await receive_until(page, lambda m: len(m) >= 2)
    message = f"No job {chain.pk} that you can see."
    assert sorted(gone, key=lambda m: m["type"]) == [
        {"type": "error", "code": "not_found", "stream": "s", "chain": chain.pk, "message": message},
        {"type": "unsubscribed", "chain": chain.pk},
    ]
    closing = await receive_until(cli, lambda m: bool(m) and m[-1]["type"] == "error")
    assert closing[-1] == {"type": "error", "code": "not_found", "message": message}
    assert await cli.receive_output() == {"type": "websocket.close", "code": 4404}

    write(log_store, chain.pk, attempt_id, ["private again"])
    await database_sync_to_async(finish)(chain)  # a status change and a log line: neither arrives
    assert await page.receive_nothing(0.5)
    await page.disconnect()
    await cli.disconnect()


async def test_a_cli_socket_checks_visibility_once_for_its_first_follow_and_again_for_a_restart(
    ws_app, job, user, token_for, log_store, monkeypatch
):
    """Connecting checked who may see the chain; the first request trusts that check (a change
    since is an event the socket gets), so 1,000 viewers connecting cost 1,000 visibility queries,
    not 2,000. A later request (a restart after ``log.behind``) checks again."""
    from apps.experiments import consumers

    chain, attempt_id = job
    checked: list[int] = []
    real = consumers.chains_visible_to

    def counting(*, user: Any) -> Any:
        checked.append(user.pk)
        return real(user=user)

    monkeypatch.setattr(consumers, "chains_visible_to", counting)
    write(log_store, chain.pk, attempt_id, ["one"])
    comm = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=await database_sync_to_async(token_for)(user))
    assert (await comm.connect())[0]
    assert checked == [user.pk]
    await comm.send_json_to({})
    got = await receive_until(comm, lambda m: line_count(m) >= 1 and m[-1]["type"] == "log.status")
    assert contents(log_data(got)) == ["one"]
    assert checked == [user.pk]
    await comm.send_json_to({})  # a restart
    got = await receive_until(comm, lambda m: line_count(m) >= 1 and m[-1]["type"] == "log.status")
    assert contents(log_data(got)) == ["one"]
    assert checked == [user.pk, user.pk]
    await comm.disconnect()


async def test_unsharing_between_connect_and_the_first_request_still_cuts_the_team_mate_off(
    ws_app, job, user, other_user, token_for, log_store
):
    """The first request does not check again, so the change must reach the socket as an event: it
    is closed (4404) before it asks, and is sent no line."""
    from django.contrib.auth.models import Group

    from apps.experiments import services

    chain, attempt_id = job

    def share() -> None:
        team = Group.objects.create(name="vision")
        for member in (user, other_user):
            member.team = team
            member.save(update_fields=["team"])
        services.experiment_share(user=user, chain=chain, shared=True)

    await database_sync_to_async(share)()
    write(log_store, chain.pk, attempt_id, ["private"])
    cli = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=await database_sync_to_async(token_for)(other_user))
    assert (await cli.connect())[0]
    await database_sync_to_async(services.experiment_share)(user=user, chain=chain, shared=False)
    message = f"No job {chain.pk} that you can see."
    assert await cli.receive_json_from() == {"type": "error", "code": "not_found", "message": message}
    assert await cli.receive_output() == {"type": "websocket.close", "code": 4404}
    assert get_hub().tailers == {}
    await cli.disconnect()


async def test_a_cli_socket_refused_at_connect_leaves_the_groups_it_joined(ws_app, job, other_user, token_for):
    """Groups are joined before the check (so no change is missed); a refused socket leaves them."""
    from portal.fanout import get_fanout

    chain, _attempt_id = job
    comm = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=await database_sync_to_async(token_for)(other_user))
    connected, code = await comm.connect()
    assert (connected, code) == (False, 4404)
    assert get_fanout().members == {}


async def test_leaving_the_team_cuts_a_team_mate_off_the_shared_chain_at_once(
    ws_app, job, user, other_user, token_for, log_store
):
    """Issue 12 item 8, beyond unsharing: an admin moves a team-mate to another team while they
    follow a shared chain over both sockets. The sockets reload the user, leave the old team's group
    and drop the chain; nothing more of it arrives. Their own events still do."""
    from django.contrib.auth.models import Group

    from apps.accounts import services as account_services
    from apps.experiments import services

    chain, attempt_id = job

    def share() -> None:
        team = Group.objects.create(name="vision")
        for member in (user, other_user):
            member.team = team
            member.save(update_fields=["team"])
        services.experiment_share(user=user, chain=chain, shared=True)

    await database_sync_to_async(share)()
    write(log_store, chain.pk, attempt_id, ["shared 1"])
    token = await database_sync_to_async(token_for)(other_user)
    page = communicator(ws_app, "/ws/events/", token=token)
    assert (await page.connect())[0]
    await page.send_json_to({"action": "subscribe", "chain": chain.pk})
    assert await page.receive_json_from() == {"type": "subscribed", "chain": chain.pk}
    await page.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "s"})
    assert contents(log_data(await receive_until(page, lambda m: line_count(m) >= 1))) == ["shared 1"]
    cli = communicator(ws_app, f"/ws/logs/{chain.pk}/0/", token=token)
    assert (await cli.connect())[0]
    await cli.send_json_to({})
    assert contents(log_data(await receive_until(cli, lambda m: line_count(m) >= 1))) == ["shared 1"]

    await database_sync_to_async(account_services.user_update)(actor=None, user=other_user, team="audio")
    gone = await receive_until(page, lambda m: len(m) >= 2)
    message = f"No job {chain.pk} that you can see."
    assert sorted(gone, key=lambda m: m["type"]) == [
        {"type": "error", "code": "not_found", "stream": "s", "chain": chain.pk, "message": message},
        {"type": "unsubscribed", "chain": chain.pk},
    ]
    closing = await receive_until(cli, lambda m: bool(m) and m[-1]["type"] == "error")
    assert closing[-1] == {"type": "error", "code": "not_found", "message": message}
    assert await cli.receive_output() == {"type": "websocket.close", "code": 4404}

    write(log_store, chain.pk, attempt_id, ["after the move"])
    await database_sync_to_async(finish)(chain)  # the old team's events: none arrive
    assert await page.receive_nothing(0.5)
    await page.disconnect()
    await cli.disconnect()


async def test_a_change_that_keeps_access_keeps_the_follow(ws_app, job, user, token_for, log_store):
    """The owner's own team change sends the access event too; they still see their chain."""
    from apps.accounts import services as account_services

    chain, attempt_id = job
    write(log_store, chain.pk, attempt_id, ["mine 1"])
    page = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await page.connect())[0]
    await page.send_json_to({"action": "subscribe", "chain": chain.pk})
    assert await page.receive_json_from() == {"type": "subscribed", "chain": chain.pk}
    await page.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "s"})
    await receive_until(page, lambda m: line_count(m) >= 1)
    await database_sync_to_async(account_services.user_update)(actor=None, user=user, team="audio")
    write(log_store, chain.pk, attempt_id, ["mine 2"])
    more = await receive_until(page, lambda m: line_count(m) >= 1)
    assert contents(log_data(more)) == ["mine 2"]
    assert not [m for m in more if m["type"] in {"error", "unsubscribed"}]
    await page.disconnect()


async def test_deactivating_a_user_closes_their_sockets_at_once(ws_app, user, token_for, settings):
    from apps.accounts import services as account_services

    settings.ROTA_REALTIME = {"AUTH_RECHECK_SECONDS": 3600}  # not the timer: the event closes it
    page = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await page.connect())[0]
    await database_sync_to_async(account_services.user_update)(actor=None, user=user, is_active=False)
    closing = await receive_until(page, lambda m: bool(m) and m[-1]["type"] == "error")
    assert closing[-1]["code"] == "unauthenticated"
    assert await page.receive_output() == {"type": "websocket.close", "code": 4401}


async def test_the_owner_keeps_everything_when_unsharing(ws_app, job, user, other_user, token_for, log_store):
    from django.contrib.auth.models import Group

    from apps.experiments import services

    chain, attempt_id = job

    def share() -> None:
        user.team = Group.objects.create(name="vision")
        user.save(update_fields=["team"])
        services.experiment_share(user=user, chain=chain, shared=True)

    await database_sync_to_async(share)()
    write(log_store, chain.pk, attempt_id, ["mine"])
    page = communicator(ws_app, "/ws/events/", token=await database_sync_to_async(token_for)(user))
    assert (await page.connect())[0]
    await page.send_json_to({"action": "subscribe", "chain": chain.pk})
    assert await page.receive_json_from() == {"type": "subscribed", "chain": chain.pk}
    await page.send_json_to({"action": "follow_log", "chain": chain.pk, "rank": 0, "stream": "s"})
    await receive_until(page, lambda m: line_count(m) >= 1)
    await database_sync_to_async(services.experiment_share)(user=user, chain=chain, shared=False)
    assert await page.receive_nothing(0.5)  # no visibility event is forwarded, nothing is dropped
    write(log_store, chain.pk, attempt_id, ["still mine"])
    assert contents(log_data(await receive_until(page, lambda m: line_count(m) >= 1))) == ["still mine"]
    await page.disconnect()
