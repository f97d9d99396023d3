"""The per-process fan-out: one layer membership per group however many sockets, each message
handed to the group's local sockets in order, with the event encoded once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portal.fanout import Fanout

pytestmark = pytest.mark.asyncio


class Layer:
    """A channel layer that records membership calls; ``put`` delivers to the fan-out's channel."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def new_channel(self) -> str:
        return "process.1"

    async def group_add(self, group: str, channel: str) -> None:
        self.calls.append(("add", group))

    async def group_discard(self, group: str, channel: str) -> None:
        self.calls.append(("discard", group))

    async def receive(self, channel: str) -> dict[str, Any]:
        return await self.queue.get()


class Socket:
    def __init__(self, fail: bool = False) -> None:
        self.got: list[tuple[str, str]] = []
        self.frames: list[Any] = []
        self.fail = fail

    async def rota_event(self, message: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("gone")
        self.got.append((message["group"], message["text"]))
        self.frames.append(message["frame"])


def event(group: str, n: int) -> dict[str, Any]:
    return {"type": "rota.event", "id": f"e{n}", "group": group, "event": {"type": "chain.status", "n": n}}


async def until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("timed out")


async def test_one_membership_per_group_and_each_message_to_its_groups_sockets_in_order():
    layer = Layer()
    fanout = Fanout(layer)
    sockets = [Socket() for _ in range(30)]
    for socket in sockets:
        await fanout.join("chain.7", socket)
    await fanout.join("user.1", sockets[0])
    assert layer.calls == [("add", "chain.7"), ("add", "user.1")]

    for n in range(3):
        layer.queue.put_nowait(event("chain.7", n))
    layer.queue.put_nowait(event("user.1", 3))
    layer.queue.put_nowait(event("team.2", 4))  # no local socket in it: dropped
    await until(lambda: len(sockets[0].got) == 4)
    chain_texts = [("chain.7", f'{{"type": "chain.status", "n": {n}}}') for n in range(3)]
    assert sockets[0].got == [*chain_texts, ("user.1", '{"type": "chain.status", "n": 3}')]
    assert all(socket.got == chain_texts for socket in sockets[1:])
    # One frame per message for every socket (framed once), holding the same text.
    for n in range(3):
        frame = sockets[0].frames[n]
        assert frame.text == chain_texts[n][1]
        assert all(socket.frames[n] is frame for socket in sockets[1:])

    for socket in sockets[:-1]:
        await fanout.leave("chain.7", socket)
    assert layer.calls == [("add", "chain.7"), ("add", "user.1")]  # one socket still in it
    await fanout.leave("chain.7", sockets[-1])
    await fanout.leave("chain.7", sockets[-1])  # twice: nothing more
    await fanout.leave("user.1", sockets[0])
    assert layer.calls[2:] == [("discard", "chain.7"), ("discard", "user.1")]
    assert fanout.members == {}
    assert fanout._task is not None
    fanout._task.cancel()


async def test_a_broken_socket_does_not_keep_the_event_from_the_others():
    layer = Layer()
    fanout = Fanout(layer)
    broken, fine = Socket(fail=True), Socket()
    await fanout.join("chain.7", broken)
    await fanout.join("chain.7", fine)
    layer.queue.put_nowait(event("chain.7", 1))
    await until(lambda: len(fine.got) == 1)
    assert fine.got == [("chain.7", '{"type": "chain.status", "n": 1}')]
    assert fanout._task is not None
    fanout._task.cancel()


async def test_memberships_are_renewed_before_the_layer_forgets_them(monkeypatch):
    from portal import fanout as fanout_module

    monkeypatch.setattr(fanout_module, "RENEW_SECONDS", 0.01)
    layer = Layer()
    fanout = Fanout(layer)
    socket = Socket()
    await fanout.join("chain.7", socket)
    await until(lambda: layer.calls.count(("add", "chain.7")) >= 3)
    await fanout.leave("chain.7", socket)
    renewed = len(layer.calls)
    await asyncio.sleep(0.05)
    assert layer.calls[renewed - 1 :] == [("discard", "chain.7")]  # nothing renewed once it is left
    assert fanout._task is not None and fanout._renewer is not None
    fanout._task.cancel()
    fanout._renewer.cancel()
