"""Live log following: one tailer per (chain, rank) per server process, shared by all its viewers.

HAI Studio polled the backend every few seconds per subscriber and kept each viewer's whole log in
memory. Here a server process runs at most one ``Tailer`` per (chain, rank), however many viewers
follow it, and nothing holds a whole log:

- **Tailer** (one per (chain, rank), created by the first viewer, gone with the last one). It
  watches the file of the chain's current attempt (``os.stat`` every ``LOG_POLL_SECONDS``; rank
  supervisors in other processes append to it), reads what was appended once (``LogStore.read``,
  whole lines, at most ``READ_LIMIT`` bytes at a time) and hands the same ``Chunk`` to every live
  viewer. When the attempt's file is read to its end and a later attempt exists (suspend →
  requeue), it moves on, inserting the separator line ``LogStore.read_chain`` inserts, so a
  followed log is byte for byte what paging the HTTP API returns. It ends — ``log.end`` — once
  the chain was seen finished *before* a poll that found the last attempt's file fully read.
  Which attempts exist and whether the chain finished come from one query per hub every
  ``STATE_POLL_SECONDS`` for all its tailers together, not one per viewer.
- **Viewer** (one per follow request). It starts from a cursor ``(attempt_id, offset)``, a tail
  size, or the beginning, and first *catches up from the files* (in a worker thread, 64 KiB per
  message) until it reaches the tailer's position, then attaches to the tailer — a synchronous step
  on the event loop, so no chunk can slip between the two. A viewer's position never passes the
  tailer's: if a client's cursor is ahead (it came from another server process), the tailer is
  polled first.
- **Back-pressure.** The tailer never awaits a viewer: it appends the chunk to each viewer's buffer
  and moves on. A viewer's own task drains its buffer to the socket. When a buffer would pass
  ``VIEWER_BUFFER_BYTES`` the viewer is detached, its buffer dropped, and it is sent ``log.behind``
  with the cursor of the first byte it did not get; the client follows again from there, which
  reads from the files at the client's own pace. A slow viewer therefore costs the others nothing
  and holds at most its buffer in memory. A slow *network* is seen too: under daphne an ASGI send
  never waits (Twisted buffers the frame), so the sink reports the socket's unsent bytes
  (``Sink.backlog``); while they exceed half the buffer limit the viewer stops draining, its
  buffer fills and it falls behind, instead of the server buffering the whole log for it.

The hub is per event loop (``get_hub()``); everything here runs on that loop except file reads
(``asyncio.to_thread``) and the state query. The wire protocol is in ``apps/experiments/consumers.py``;
measurements in docs/PERFORMANCE.md (``bench/realtime.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from channels.db import database_sync_to_async
from django.conf import settings

from apps.core.aio import cancel_and_wait
from apps.experiments.models import Attempt, Chain
from apps.logs.store import ChainCursor, LogStore, get_log_store

logger = logging.getLogger(__name__)

READ_LIMIT = 64 * 1024
"""Bytes read from a file at a time (the tailer's chunks, a catch-up message)."""

DEFAULTS: dict[str, float] = {
    "LOG_POLL_SECONDS": 0.05,
    "STATE_POLL_SECONDS": 1.0,
    "VIEWER_BUFFER_BYTES": 1024 * 1024,
    # How often an open websocket checks that its token or session still holds (and at the
    # token's expiry): a revoked token or a signed-out session loses its live updates this soon.
    "AUTH_RECHECK_SECONDS": 30.0,
}


def separator(index: int, attempt_id: int, previous_ends_line: bool) -> str:
    """The line ``LogStore.read_chain`` puts before the attempt at ``index`` (0-based) of a chain."""
    line = f"──── attempt {index + 1} (id {attempt_id}) ────\n"
    return line if previous_ends_line else "\n" + line


def format_cursor(cursor: ChainCursor) -> str:
    return f"{cursor.attempt_id}:{cursor.offset}"


@dataclass(frozen=True)
class ChainState:
    """What a tailer needs to know of its chain: its attempts in order, and whether it finished."""

    attempt_ids: tuple[int, ...]
    finished: bool
    status: str


StateLoader = Callable[[list[int]], Awaitable[dict[int, ChainState]]]


@dataclass(frozen=True)
class Chunk:
    """Text read from ``start`` up to ``end`` (a separator chunk spans two attempts)."""

    text: str
    start: ChainCursor
    end: ChainCursor
    size: int

    @cached_property
    def json_text(self) -> str:
        """``text`` as a JSON string, encoded once for every viewer."""
        return json.dumps(self.text, ensure_ascii=False)


class Sink(Protocol):
    """Where a viewer's messages go (a websocket, one stream of it)."""

    async def lines(self, text: str, cursor: str, json_text: str | None) -> None: ...

    async def behind(self, cursor: str) -> None: ...

    async def end(self, status: str) -> None: ...

    async def status(self, status: str) -> None:
        """The chain's status, when the viewer asked for it (``statuses``): on attach, then on change."""

    async def failed(self) -> None:
        """The stream broke on the server (an I/O error): the client may follow again later."""
        ...

    def backlog(self) -> int:
        """Bytes accepted for this socket but not yet sent by the server (0 if unknown)."""
        ...


# --------------------------------------------------------------------------------------------
# The tailer


@dataclass(eq=False)
class Tailer:
    hub: TailHub
    chain_id: int
    rank: int
    state: ChainState
    position: ChainCursor = field(init=False)
    ended: str | None = field(default=None, init=False)
    """The chain's final status once the log ended."""
    failed: bool = field(default=False, init=False)
    viewers: set[Viewer] = field(default_factory=set, init=False)
    users: int = field(default=0, init=False)
    reads: int = field(default=0, init=False)
    """Reads of appended data (tests check it does not grow with the number of viewers)."""

    def __post_init__(self) -> None:
        self._key = str(self.chain_id)
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._ends_line = True
        self._task: asyncio.Task[None] | None = None
        latest = self.state.attempt_ids[-1]
        # Start at the end of the last whole line: what is already written, viewers read from the
        # files themselves (a line caught half copied is read whole once complete).
        self.position = ChainCursor(latest, self.hub.store.line_end(self._key, latest, self.rank))

    # -- bookkeeping -------------------------------------------------------------------------

    def retain(self) -> None:
        self.users += 1
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"tailer {self.chain_id}/{self.rank}")

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self.hub._forget(self)
            self._wake.set()
            if self._task is not None and not self._task.done():
                self._task.cancel()

    def attach(self, viewer: Viewer) -> None:
        self.viewers.add(viewer)

    def detach(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)

    def order(self, cursor: ChainCursor) -> tuple[int, int] | None:
        """A sortable key for a cursor of this chain, or None if its attempt is unknown here."""
        try:
            return self.state.attempt_ids.index(cursor.attempt_id), cursor.offset
        except ValueError:
            return None

    def compare(self, cursor: ChainCursor) -> int | None:
        """-1, 0 or 1 as ``cursor`` is before, at or after the tailer's position (None: unknown)."""
        mine, theirs = self.order(self.position), self.order(cursor)
        if mine is None or theirs is None:
            return None
        return (theirs > mine) - (theirs < mine)

    def update_state(self, state: ChainState | None) -> None:
        if state is None:  # the chain was deleted
            state = ChainState(self.state.attempt_ids, True, "deleted")
        elif self.position.attempt_id not in state.attempt_ids:
            if self.position.offset > 0:
                return  # never forget an attempt being read
            # It was the latest attempt, never scheduled, and a later one replaced it (a chain
            # canceled while waiting, then resumed): nothing was read from it, start at the new one.
            self.position = ChainCursor(state.attempt_ids[0], 0)
        changed = state.status != self.state.status
        self.state = state
        if changed:
            for viewer in list(self.viewers):
                viewer.status_changed(state.status)
        self._wake.set()

    # -- following ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self.ended is None and self.users > 0:
                async with self._lock:
                    progressed = await self._step()
                if progressed:
                    await asyncio.sleep(0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.hub.poll_interval)
                self._wake.clear()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("tailer for chain %s rank %s failed", self.chain_id, self.rank)
            self.failed = True
            self.hub._forget(self)
            for viewer in list(self.viewers):
                viewer.fail()
            self.viewers.clear()

    async def sync(self) -> None:
        """Reload the chain's state and read everything written so far (a viewer needs it now)."""
        await self.hub.refresh(self)
        await self.read_written()

    async def read_written(self) -> None:
        """Read everything written so far, with the chain's state as the tailer knows it (no query).

        Before a viewer says the chain's status, the lines written before that status was loaded
        must reach it first: they are in the file by now, and the tailer's state is at least as new
        as the status (``update_state`` sets both). One query per viewer here was a burst of one
        database round trip per viewer (500 on one process) each time a chain's status changed or
        a viewer attached, while its lines waited (docs/PERFORMANCE.md)."""
        async with self._lock:
            while await self._step():
                pass

    async def _step(self) -> bool:
        """Read what was appended, or move to the next attempt, or end. True if it advanced."""
        if self.ended is not None:
            return False
        state = self.state  # as known *before* looking at the file
        attempt, offset = self.position.attempt_id, self.position.offset
        try:
            size = os.stat(self.hub.store.path(self._key, attempt, self.rank)).st_size
        except FileNotFoundError:
            size = 0
        if size > offset:
            chunk = await asyncio.to_thread(self.hub.store.read, self._key, attempt, self.rank, offset, READ_LIMIT)
            self.reads += 1
            half_line = chunk.eof and not chunk.data.endswith("\n")
            if half_line and attempt == state.attempt_ids[-1] and not state.finished:
                # A line caught while the kernel copies it in: publishing it now would split it
                # between two messages. Its writer completes it; read it whole at the next poll.
                return False
            if chunk.next_offset > offset and self.position == ChainCursor(attempt, offset):
                end = ChainCursor(attempt, chunk.next_offset)
                self._publish(Chunk(chunk.data, self.position, end, chunk.next_offset - offset))
                return True
        index = state.attempt_ids.index(attempt)
        if index + 1 < len(state.attempt_ids):
            nxt = state.attempt_ids[index + 1]
            text = separator(index + 1, nxt, self._ends_line)
            self._publish(Chunk(text, self.position, ChainCursor(nxt, 0), len(text.encode())))
            return True
        if state.finished:
            self._end(state.status)
        return False

    def _publish(self, chunk: Chunk) -> None:
        self.position = chunk.end
        if chunk.text:
            self._ends_line = chunk.text.endswith("\n")
        for viewer in list(self.viewers):
            viewer.push(chunk)

    def _end(self, status: str) -> None:
        self.ended = status
        self.hub._forget(self)  # a later follower (after a resume) gets a fresh tailer
        for viewer in list(self.viewers):
            viewer.finish(status)
        self.viewers.clear()


# --------------------------------------------------------------------------------------------
# A viewer


@dataclass(eq=False)
class Viewer:
    tailer: Tailer
    cursor: ChainCursor
    sink: Sink
    buffer_limit: int
    statuses: bool = False
    """Also send the chain's status (on attach, then on change): the CLI's socket learns that a
    job was suspended without asking the REST API."""
    state: str = field(default="catching_up", init=False)
    """catching_up → live → (behind | ended | closed)"""

    def __post_init__(self) -> None:
        self._buffer: deque[Chunk] = deque()
        self._buffered = 0
        self._wake = asyncio.Event()
        self._behind = False
        self._end_status: str | None = None
        self._failed = False
        self._status: str | None = None
        self._status_read = False
        self._ends_line: bool | None = None
        self.task: asyncio.Task[None] | None = None

    # -- called by the tailer (synchronously, on the loop) -----------------------------------

    def push(self, chunk: Chunk) -> None:
        if self._buffer and self._buffered + chunk.size > self.buffer_limit:
            # Too slow: drop what it has not taken, detach, tell it where to resume.
            self._buffer.clear()
            self._buffered = 0
            self._behind = True
            self.tailer.detach(self)
        else:
            self._buffer.append(chunk)
            self._buffered += chunk.size
        self._wake.set()

    def status_changed(self, status: str) -> None:
        if self.statuses:
            self._status = status
            self._wake.set()

    def finish(self, status: str) -> None:
        self._end_status = status
        self._wake.set()

    def fail(self) -> None:
        self._failed = True
        self._wake.set()

    # -- the viewer's task -------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="log viewer")

    async def close(self) -> None:
        await cancel_and_wait(self.task)

    async def _run(self) -> None:
        try:
            if await self._catch_up():
                await self._follow()
        except asyncio.CancelledError:
            self.state = "closed"
            raise
        except Exception:
            logger.exception("log viewer of chain %s failed", self.tailer.chain_id)
            self.state = "closed"
            with contextlib.suppress(Exception):
                await self.sink.failed()
        finally:
            self.tailer.detach(self)
            self.tailer.release()
            self.tailer.hub.viewers.discard(self)

    async def _catch_up(self) -> bool:
        """Read from the files up to the tailer's position, then attach. False if the log ended."""
        tailer = self.tailer
        synced = False
        while True:
            if tailer.failed:
                self.state = "closed"
                await self.sink.failed()
                return False
            where = tailer.compare(self.cursor)
            if where is None or where > 0:
                if not synced:
                    await tailer.sync()  # a cursor from another process, or of an attempt it has not seen
                    synced = True
                    continue
                # Still past everything that exists (a stale or foreign cursor): go on from the end.
                self.cursor = tailer.position
                continue
            if where == 0:
                if tailer.ended is not None:
                    await self._send_end(tailer.ended)
                    return False
                tailer.attach(self)  # no await since the comparison: nothing can slip in between
                self.state = "live"
                self.status_changed(tailer.state.status)
                return True
            await self._wait_for_room()
            text, cursor = await asyncio.to_thread(self._read_files, tailer.position, tailer.state.attempt_ids)
            if cursor == self.cursor:  # nothing readable yet (cannot happen with whole lines)
                await asyncio.sleep(tailer.hub.poll_interval)
                continue
            self.cursor = cursor
            if text:
                self._ends_line = text.endswith("\n")
                await self.sink.lines(text, format_cursor(cursor), None)

    def _read_files(self, until: ChainCursor, attempt_ids: tuple[int, ...]) -> tuple[str, ChainCursor]:
        """Up to ``READ_LIMIT`` bytes from the viewer's cursor, never past ``until`` (worker thread)."""
        store, key, rank = self.tailer.hub.store, self.tailer._key, self.tailer.rank
        cursor = self.cursor
        parts: list[str] = []
        used = 0
        ends_line = self._ends_line if self._ends_line is not None else True
        while used < READ_LIMIT and cursor != until:
            if cursor.attempt_id == until.attempt_id:
                room = min(READ_LIMIT - used, until.offset - cursor.offset)
                chunk = store.read(key, cursor.attempt_id, rank, cursor.offset, room)
                if chunk.next_offset <= cursor.offset:
                    break
                parts.append(chunk.data)
                used += chunk.next_offset - cursor.offset
                cursor = ChainCursor(cursor.attempt_id, chunk.next_offset)
                continue
            chunk = store.read(key, cursor.attempt_id, rank, cursor.offset, READ_LIMIT - used)
            if chunk.data:
                parts.append(chunk.data)
                ends_line = chunk.data.endswith("\n")
            used += max(0, chunk.next_offset - cursor.offset)
            cursor = ChainCursor(cursor.attempt_id, max(cursor.offset, chunk.next_offset))
            if not chunk.eof:
                break
            index = attempt_ids.index(cursor.attempt_id) + 1
            text = separator(index, attempt_ids[index], ends_line)
            parts.append(text)
            used += len(text.encode())
            ends_line = True
            cursor = ChainCursor(attempt_ids[index], 0)
        return "".join(parts), cursor

    async def _follow(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._failed:
                self.state = "closed"
                await self.sink.failed()
                return
            if self._behind:
                self.state = "behind"
                await self.sink.behind(format_cursor(self.cursor))
                return
            if self._buffer:
                await self._send_buffered()
                continue
            if self._status is not None:
                if not self._status_read:  # first everything written before the change
                    self._status_read = True
                    await self.tailer.read_written()
                    self._wake.set()
                    continue
                status, self._status, self._status_read = self._status, None, False
                self._wake.set()  # look again: the end may be known already
                if self._end_status is None:  # else ``log.end`` says it
                    await self.sink.status(status)
                continue
            if self._end_status is not None:
                await self._send_end(self._end_status)
                return

    async def _send_buffered(self) -> None:
        """Send what is buffered as one message (up to ``READ_LIMIT`` bytes unless one chunk is more)."""
        batch = [self._buffer.popleft()]
        size = batch[0].size
        while self._buffer and size + self._buffer[0].size <= READ_LIMIT:
            chunk = self._buffer.popleft()
            batch.append(chunk)
            size += chunk.size
        self._buffered -= size
        self.cursor = batch[-1].end  # taken: if it falls behind now, it resumes after these
        self._wake.set()  # look again: more may be buffered, or the end
        if len(batch) == 1:
            await self.sink.lines(batch[0].text, format_cursor(self.cursor), batch[0].json_text)
        else:
            await self.sink.lines("".join(c.text for c in batch), format_cursor(self.cursor), None)
        await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        """While the server holds too much unsent data for this socket, wait (the buffer fills)."""
        high_water = self.buffer_limit // 2
        while self.sink.backlog() > high_water:
            await asyncio.sleep(self.tailer.hub.poll_interval)

    async def _send_end(self, status: str) -> None:
        self.state = "ended"
        await self.sink.end(status)


# --------------------------------------------------------------------------------------------
# The hub


class TailHub:
    """The tailers of one event loop (one server process), and the state poll they share."""

    def __init__(
        self,
        store: LogStore,
        load_states: StateLoader,
        *,
        poll_interval: float = DEFAULTS["LOG_POLL_SECONDS"],
        state_interval: float = DEFAULTS["STATE_POLL_SECONDS"],
        buffer_bytes: int = int(DEFAULTS["VIEWER_BUFFER_BYTES"]),
    ) -> None:
        self.store = store
        self.load_states = load_states
        self.poll_interval = poll_interval
        self.state_interval = state_interval
        self.buffer_bytes = max(buffer_bytes, 2 * READ_LIMIT)
        self.tailers: dict[tuple[int, int], Tailer] = {}
        self.viewers: set[Viewer] = set()
        self._state_task: asyncio.Task[None] | None = None

    def follow(
        self,
        *,
        chain_id: int,
        rank: int,
        state: ChainState,
        start: ChainCursor,
        sink: Sink,
        statuses: bool = False,
    ) -> Viewer:
        """Start a viewer from ``start`` (see ``resolve_start``); it runs until closed or ended."""
        tailer = self.tailers.get((chain_id, rank))
        if tailer is None:
            tailer = Tailer(self, chain_id, rank, state)
            self.tailers[(chain_id, rank)] = tailer
        tailer.retain()
        tailer.update_state(state)  # just loaded by the caller: at least as fresh as the tailer's
        viewer = Viewer(tailer, start, sink, self.buffer_bytes, statuses)
        self.viewers.add(viewer)
        viewer.start()
        self._ensure_state_poll()
        return viewer

    async def refresh(self, tailer: Tailer) -> None:
        states = await self.load_states([tailer.chain_id])
        tailer.update_state(states.get(tailer.chain_id))

    def _forget(self, tailer: Tailer) -> None:
        if self.tailers.get((tailer.chain_id, tailer.rank)) is tailer:
            del self.tailers[(tailer.chain_id, tailer.rank)]

    def _ensure_state_poll(self) -> None:
        if self._state_task is None or self._state_task.done():
            self._state_task = asyncio.get_running_loop().create_task(self._poll_states(), name="tailer states")

    async def _poll_states(self) -> None:
        while self.tailers:
            await asyncio.sleep(self.state_interval)
            tailers = list(self.tailers.values())
            if not tailers:
                break
            try:
                states = await self.load_states(sorted({t.chain_id for t in tailers}))
            except Exception:
                logger.exception("could not load the state of followed chains")
                continue
            for tailer in tailers:
                tailer.update_state(states.get(tailer.chain_id))

    async def aclose(self) -> None:
        """Stop everything (tests)."""
        for viewer in list(self.viewers):
            await viewer.close()
        await cancel_and_wait(self._state_task)


def resolve_start(
    store: LogStore,
    chain_id: int,
    rank: int,
    attempt_ids: tuple[int, ...],
    *,
    cursor: ChainCursor | None,
    tail: int | None,
) -> ChainCursor:
    """Where a follow starts: the cursor; else ``tail`` bytes before the end of the newest attempt
    that has output (on a line start); else the beginning. Reads files: call it in a thread."""
    if cursor is not None:
        return cursor
    key = str(chain_id)
    if tail == 0:  # only what comes from now on: after the last whole line written so far
        return ChainCursor(attempt_ids[-1], store.line_end(key, attempt_ids[-1], rank))
    if tail is not None:
        for attempt_id in reversed(attempt_ids):
            if store.size(key, attempt_id, rank) > 0:
                chunk = store.read(key, attempt_id, rank, offset=-tail, limit=max(1, tail))
                return ChainCursor(attempt_id, chunk.offset)
        return ChainCursor(attempt_ids[-1], 0)
    return ChainCursor(attempt_ids[0], 0)


# --------------------------------------------------------------------------------------------
# The process-wide hub, backed by the database


async def load_chain_states(chain_ids: list[int]) -> dict[int, ChainState]:
    """``chain_states`` in the database thread."""
    return await database_sync_to_async(chain_states)(chain_ids)


def chain_states(chain_ids: list[int]) -> dict[int, ChainState]:
    """The state of several chains in two queries.

    The attempts are those whose logs the HTTP API pages through (``apps.logs.api.views``):
    the ones ever scheduled, or the latest when none was — a waiting or held next attempt gets its
    separator once it runs."""
    attempts: dict[int, list[tuple[int, bool]]] = {}
    for chain_id, attempt_id, scheduled_at in (
        Attempt.objects.filter(chain_id__in=chain_ids)
        .order_by("chain_id", "index")
        .values_list("chain_id", "pk", "scheduled_at")
    ):
        attempts.setdefault(chain_id, []).append((attempt_id, scheduled_at is not None))
    states: dict[int, ChainState] = {}
    for pk, finished, status in Chain.objects.filter(pk__in=chain_ids).values_list("pk", "finished", "status"):
        rows = attempts.get(pk)
        if rows:
            ran = tuple(attempt_id for attempt_id, scheduled in rows if scheduled)
            states[pk] = ChainState(ran or (rows[-1][0],), finished, status)
    return states


def realtime_setting(name: str) -> Any:
    return {**DEFAULTS, **getattr(settings, "ROTA_REALTIME", {})}.get(name)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TailHub] = weakref.WeakKeyDictionary()


def get_hub() -> TailHub:
    """The hub of the running event loop (one per server process), created on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = TailHub(
            get_log_store(),
            load_chain_states,
            poll_interval=float(realtime_setting("LOG_POLL_SECONDS")),
            state_interval=float(realtime_setting("STATE_POLL_SECONDS")),
            buffer_bytes=int(realtime_setting("VIEWER_BUFFER_BYTES")),
        )
        _hubs[loop] = hub
    return hub


def forget_hubs() -> None:
    """Drop every loop's hub: the next follower builds one from the current settings.

    For tests, where one long-lived server outlives the log root each test configures; a server
    process never needs it (its log root does not change)."""
    _hubs.clear()
