"""Realtime events to a process's sockets: one group membership per process, not one per socket.

``portal.realtime`` sends each event once to each of its groups (``user.<id>``, ``chain.<id>``, …).
If every socket joined those groups on the channel layer itself, an event to a job watched by 200
sockets would be 200 channel-layer messages per group, each received, decoded and dispatched by
Channels' consumer machinery on its own (with Redis, a push and a blocking pop each): at 10 events a
second that collapsed into seconds of lag (docs/PERFORMANCE.md, ``bench/realtime.py``).

Instead each server process (each event loop) has one ``Fanout``: it joins a group on the layer,
with a channel of its own, when the first local socket joins it and leaves when the last one
leaves; one task receives the group's messages, encodes the event's JSON once (``text``) and frames it
once (``frame``, a ``portal.frames.TextFrame`` a socket under daphne can write as it is) and hands
the message to each local member's ``rota_event`` in turn, in the order the layer delivered them
(the outbox's commit order). Consumers stay what STYLE.md asks: they authenticate, join groups (here, through
``get_fanout().join``) and forward; a consumer in two groups of one event gets it twice and
forwards it once (the event's ``id``). Messages carry the group they were sent to (``group``) so
the fan-out knows whom they are for. Layers forget a group membership after a while (Channels'
``group_expiry``, a day): a socket used to renew its own by reconnecting, the process's lasts as
long as any of its sockets stays, so the fan-out renews its memberships every ``RENEW_SECONDS``.

This module imports no app. See docs/architecture.md ("Realtime").
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from typing import Any, Protocol

from channels.layers import get_channel_layer

from portal.frames import TextFrame

logger = logging.getLogger(__name__)

RENEW_SECONDS = 3600.0
"""How often the fan-out adds its channel to its groups again (far below Channels' one-day expiry)."""


class Member(Protocol):
    """A local socket: takes an event message (with ``text``, the event's JSON, encoded once, and
    ``frame``, its websocket frame, built once)."""

    async def rota_event(self, message: dict[str, Any]) -> None: ...


class Fanout:
    """The groups the sockets of one event loop are in, and the one task that serves them."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.members: dict[str, set[Member]] = {}
        self.channel: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # joins and leaves change layer membership one at a time

    async def join(self, group: str, member: Member) -> None:
        """Add ``member`` to ``group``; once this returns, events sent to the group reach it."""
        async with self._lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel()
                loop = asyncio.get_running_loop()
                self._task = loop.create_task(self._receive(), name="realtime fanout")
                self._renewer = loop.create_task(self._renew(), name="realtime fanout renewal")
            members = self.members.get(group)
            if members is None:
                await self.layer.group_add(group, self.channel)
                members = self.members[group] = set()
            members.add(member)

    async def leave(self, group: str, member: Member) -> None:
        """Remove ``member`` from ``group`` (nothing if it is not in it)."""
        async with self._lock:
            members = self.members.get(group)
            if members is None or member not in members:
                return
            members.discard(member)
            if not members:
                del self.members[group]
                assert self.channel is not None
                await self.layer.group_discard(group, self.channel)

    async def _receive(self) -> None:
        assert self.channel is not None
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the layer lost its connection: it reconnects; try again shortly
                logger.exception("realtime fan-out could not receive")
                await asyncio.sleep(1.0)
                continue
            await self.dispatch(message)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            async with self._lock:
                assert self.channel is not None
                for group in list(self.members):
                    try:
                        await self.layer.group_add(group, self.channel)
                    except Exception:  # the layer is down: the next renewal, or a join, adds it
                        logger.exception("realtime fan-out could not renew its membership of %s", group)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Hand a group message to the group's local members, the event encoded and framed once for all."""
        members = self.members.get(str(message.get("group")))
        if not members or "event" not in message:
            return
        text = json.dumps(message["event"])
        message = {**message, "text": text, "frame": TextFrame(text)}
        for member in list(members):
            try:
                await member.rota_event(message)
            except Exception:  # one broken socket must not keep the event from the others
                logger.warning("could not forward %s to a socket", message["event"].get("type"), exc_info=True)


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Fanout] = weakref.WeakKeyDictionary()


def get_fanout() -> Fanout:
    """The fan-out of the running event loop (one per server process), created on first use."""
    loop = asyncio.get_running_loop()
    fanout = _fanouts.get(loop)
    if fanout is None:
        fanout = _fanouts[loop] = Fanout(get_channel_layer())
    return fanout
