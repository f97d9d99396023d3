"""``cancel_and_wait``: the cancelled task ends, and a cancelled caller is not kept alive."""

import asyncio

import pytest

from apps.core.aio import cancel_and_wait

pytestmark = pytest.mark.asyncio


async def test_the_task_is_cancelled_and_awaited():
    started = asyncio.Event()

    async def forever():
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(forever())
    await started.wait()
    await cancel_and_wait(task)
    assert task.cancelled()


async def test_nothing_happens_for_none_a_finished_task_or_itself():
    await cancel_and_wait(None)
    done = asyncio.create_task(asyncio.sleep(0, result=7))
    await done
    await cancel_and_wait(done)
    assert done.result() == 7

    async def stops_itself():
        await cancel_and_wait(asyncio.current_task())
        return "still running"

    assert await asyncio.create_task(stops_itself()) == "still running"


async def test_a_caller_cancelled_while_waiting_is_cancelled_too():
    """The old ``with suppress(CancelledError): await task`` swallowed the caller's own cancellation:
    the caller went on to its next step (here: waiting forever) and a loop shutdown hung on it."""
    cleaning, release = asyncio.Event(), asyncio.Event()

    async def slow_to_stop():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleaning.set()
            await release.wait()  # cleanup that takes a while
            raise

    steps = []

    async def caller(task):
        await cancel_and_wait(task)
        steps.append("went on after the wait")
        await asyncio.Event().wait()

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    outer = asyncio.create_task(caller(task))
    await cleaning.wait()
    outer.cancel()  # e.g. the loop shutting down
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(outer, timeout=5)
    assert outer.cancelled() and task.cancelled()
    assert steps == []
