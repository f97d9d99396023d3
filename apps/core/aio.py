"""Small asyncio helpers shared by the realtime code."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended.

    The task's own ``CancelledError`` is expected and swallowed, but a cancellation of the *caller*
    while it waits still propagates. ``with suppress(CancelledError): await task`` swallows both, so
    a cancelled caller (a socket's handler at shutdown, a test loop's teardown) would carry on and
    may then wait forever on something that is itself gone.
    """
    if task is None or task.done() or task is asyncio.current_task():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
