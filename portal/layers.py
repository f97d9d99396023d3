"""The embedded profile's channel layer: in memory, and safe to send to from other threads.

Channels' ``InMemoryChannelLayer`` keeps one ``asyncio.Queue`` per channel. Its consumers wait on
those queues in the server's event loop, but in the embedded profile events are also sent from
the scheduler and launcher threads (``apps.core.loops``), each through ``async_to_sync`` with an
event loop of its own. ``asyncio.Queue`` is not thread-safe: waking a waiter that belongs to
another loop from there is a data race, and the wake-up is only noticed whenever the server's
loop happens to run next.

This layer remembers, per channel, the loop its receiver waits in (the server's) and hands a
send made from any other running loop over to that loop with ``run_coroutine_threadsafe``, so a
queue is only touched from its own loop. With no receiver yet, or that loop gone, it behaves exactly
like the stock layer. Production uses Redis (``channels_redis``), which needs none of this.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer


class EmbeddedChannelLayer(InMemoryChannelLayer):
    """``InMemoryChannelLayer`` whose sends from a foreign event loop run in the receiver's loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loops: dict[str, asyncio.AbstractEventLoop] = {}  # channel -> the loop its receiver waits in

    async def receive(self, channel: str) -> Any:
        self._loops[channel] = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        home = self._loops.get(channel)
        if home is None or home.is_closed() or not home.is_running() or home is asyncio.get_running_loop():
            await super().send(channel, message)
            return
        parent_send = super().send
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(parent_send(channel, message), home))

    async def group_discard(self, group: str, channel: str) -> None:
        await super().group_discard(group, channel)
        if not any(channel in members for members in self.groups.values()):
            self._loops.pop(channel, None)  # a consumer leaves its groups when it disconnects

    async def flush(self) -> None:
        await super().flush()
        self._loops.clear()
