"""The one door to the channel layer: events are sent after commit, never on rollback.

Services build a typed event (each app's ``events.py``: frozen, keyword-only dataclasses, so an
unknown field raises ``TypeError`` where it is built) and call ``send_event_on_commit(groups,
event)``. The event is checked at once (a dataclass with a dotted ``type`` that is not an init
argument, a JSON-serialisable body, valid group names), so a malformed event fails the service's
test rather than a websocket later. It is sent when the surrounding transaction commits (at once
outside one); a rolled-back transaction sends nothing. Sending means handing it to the ``Outbox``,
whose thread passes events to the channel layer in commit order without making the committing
code wait.

Channel message shape: ``{"type": "rota.event", "id": "<hex>", "group": "<group>", "event": body}``
where ``body`` is the event's fields plus ``type``. ``id`` is the same for every group of one
event, so a consumer that is in two of its groups (``user.<id>`` and ``chain.<id>``) forwards it
once. Each server process receives a group's messages once and hands them to its sockets
(``portal.fanout``). Consumers only
authenticate, join groups (``user.<id>``, ``team.<id>``, ``chain.<id>``, ``admins``) and forward: see
``apps/experiments/consumers.py`` and docs/architecture.md.

``capture_events()`` records what is sent (after commit), for tests that assert exact counts.

This module imports no app.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

ADMINS_GROUP = "admins"
MESSAGE_TYPE = "rota.event"

_EVENT_TYPE_RE = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)+")
# Channels accepts ASCII letters, digits, hyphens, underscores and periods, under 100 characters.
_GROUP_RE = re.compile(r"[A-Za-z0-9_.\-]{1,99}")


class Event(Protocol):
    type: str


class SentEvent(NamedTuple):
    """One event as it left the door: the groups it went to and its body (with ``type``)."""

    groups: tuple[str, ...]
    body: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.body["type"])


class CapturedEvents(list[SentEvent]):
    """What ``capture_events()`` saw, in send order."""

    def types(self) -> list[str]:
        return [sent.type for sent in self]

    def of_type(self, event_type: str) -> list[SentEvent]:
        return [sent for sent in self if sent.type == event_type]

    def to_group(self, group: str) -> list[SentEvent]:
        return [sent for sent in self if group in sent.groups]


_captures: list[CapturedEvents] = []
_captures_lock = threading.Lock()


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def chain_group(chain_id: int) -> str:
    return f"chain.{chain_id}"


def team_group(team_id: int) -> str:
    return f"team.{team_id}"


def event_body(event: Any) -> dict[str, Any]:
    """The wire body of a typed event: its fields plus ``type``. Rejects anything else."""
    if not dataclasses.is_dataclass(event) or isinstance(event, type):
        raise TypeError(f"events are typed dataclasses from an app's events.py, not {type(event).__name__}")
    type_field = next((f for f in dataclasses.fields(event) if f.name == "type"), None)
    if type_field is None or type_field.init:
        raise TypeError(f"{type(event).__name__} needs a fixed `type` field (field(default=..., init=False))")
    event_type = getattr(event, "type", None)
    if not isinstance(event_type, str) or not _EVENT_TYPE_RE.fullmatch(event_type):
        raise TypeError(f"{type(event).__name__}.type must be a dotted lower-case name, got {event_type!r}")
    body = dataclasses.asdict(event)
    try:
        json.dumps(body)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{event_type} has a field that is not JSON-serialisable: {exc}") from None
    return body


def _check_groups(groups: Iterable[str]) -> tuple[str, ...]:
    targets = tuple(dict.fromkeys(groups))
    if not targets:
        raise ValueError("an event needs at least one group")
    bad = [g for g in targets if not isinstance(g, str) or not _GROUP_RE.fullmatch(g)]
    if bad:
        raise ValueError(f"invalid group name(s): {bad!r}")
    return targets


class Outbox:
    """Sends events from one background thread with an event loop of its own, in order.

    Committing code only queues (``put``), so a scheduling pass that changes a thousand jobs does
    not wait on a thousand round trips to Redis; and one long-lived loop keeps the channel layer's
    connections (channels-redis pools them per event loop) instead of opening new ones for every
    event, as ``async_to_sync`` from a plain thread would. One sender keeps the order in which
    events were committed. Started on first use, again in a forked child; ``flush()`` waits until
    everything queued so far was handed to the layer (tests, benchmarks, and at exit).
    """

    MAX_QUEUED = 100_000  # beyond this the layer is not keeping up: drop (pages re-fetch on reconnect)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[tuple[str, ...], dict[str, Any]]] | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None and self._pid == os.getpid():
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=self._run, args=(loop, ready), name="rota-realtime-outbox", daemon=True)
            thread.start()
            ready.wait()
            self._loop, self._pid, self._pending = loop, os.getpid(), 0
            return loop

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._queue = asyncio.Queue()
        loop.create_task(self._drain())
        loop.call_soon(ready.set)
        loop.run_forever()

    async def _drain(self) -> None:
        assert self._queue is not None
        while True:
            groups, message = await self._queue.get()
            layer = get_channel_layer()
            if layer is not None:
                for group in groups:
                    try:
                        await layer.group_send(group, {**message, "group": group})
                    except Exception:  # a realtime hiccup must never break a committed write
                        logger.exception("could not send %s to %s", message["event"].get("type"), group)
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.notify_all()

    def put(self, groups: tuple[str, ...], message: dict[str, Any]) -> None:
        loop = self._ensure_started()
        with self._lock:
            if self._pending >= self.MAX_QUEUED:
                logger.error("realtime outbox full: dropped %s", message["event"].get("type"))
                return
            self._pending += 1
        queue = self._queue
        assert queue is not None
        loop.call_soon_threadsafe(queue.put_nowait, (groups, message))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event queued so far was sent; ``False`` if that took over ``timeout``."""
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                return True
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)


outbox = Outbox()
atexit.register(outbox.flush, 5.0)


def _send(groups: tuple[str, ...], body: dict[str, Any]) -> None:
    with _captures_lock:
        for capture in _captures:
            capture.append(SentEvent(groups, body))
    if get_channel_layer() is None:
        return
    outbox.put(groups, {"type": MESSAGE_TYPE, "id": uuid.uuid4().hex, "event": body})


def send_event_on_commit(groups: Iterable[str], event: Any) -> None:
    """Send ``event`` to ``groups`` once the current transaction commits (at once outside one).

    Raises ``TypeError``/``ValueError`` at once for a malformed event or group name."""
    body = event_body(event)
    targets = _check_groups(groups)
    transaction.on_commit(lambda: _send(targets, body))


@contextlib.contextmanager
def capture_events() -> Iterator[CapturedEvents]:
    """Record every event sent (after commit) while the block runs, in order. Events still go out.

    ::

        with capture_events() as sent:
            experiment_stop(actor=user, chain=chain)
        assert sent.types() == ["attempt.finished", "chain.status"]
    """
    captured = CapturedEvents()
    with _captures_lock:
        _captures.append(captured)
    try:
        yield captured
    finally:
        with _captures_lock:
            _captures.remove(captured)
