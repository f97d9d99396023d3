"""Enqueueing background passes by name, after commit.

Services never import the scheduler or the launcher (they sit above them); they ask for a pass by
dotted name, defined once in ``apps.core.passes``: ``enqueue_on_commit(passes.SCHEDULE)``. How it runs is the
``ROTA_TASK_RUNNER`` setting:

- ``django_q``: ``async_task`` to the qcluster workers (production; Redis broker);
- ``thread``: a worker thread inside this process (embedded profile: the in-memory channel layer
  only reaches websockets served by this same process);
- ``inline``: called right after commit in the caller's thread (tests).

A pass is level-triggered, so a request already waiting in the thread runner's queue is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


def _resolve(name: str) -> Callable[..., Any]:
    return import_string(name)


def run_now(name: str, *args: Any) -> Any:
    """Run a task function by name in this thread (used by runners and management commands)."""
    return _resolve(name)(*args)


class _ThreadRunner:
    """One daemon thread that runs queued tasks in order, dropping duplicates already queued."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self._queued: set[tuple[str, tuple[Any, ...]]] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, name: str, args: tuple[Any, ...]) -> None:
        key = (name, args)
        with self._lock:
            if key in self._queued:
                return
            self._queued.add(key)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="rota-tasks", daemon=True)
                self._thread.start()
        self._queue.put(key)

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            with self._lock:
                self._queued.discard(key)
            try:
                close_old_connections()
                run_now(key[0], *key[1])
            except Exception:
                logger.exception("background task %s failed", key[0])
            finally:
                close_old_connections()
                self._queue.task_done()

    def join(self) -> None:
        self._queue.join()


thread_runner = _ThreadRunner()


def _dispatch(name: str, args: tuple[Any, ...]) -> None:
    runner = settings.ROTA_TASK_RUNNER
    if runner == "inline":
        run_now(name, *args)
    elif runner == "thread":
        thread_runner.submit(name, args)
    else:
        from django_q.tasks import async_task

        async_task(name, *args, group=name)


def enqueue_on_commit(name: str, *args: Any, using: str | None = None) -> None:
    """Run task ``name(*args)`` once the current transaction commits (at once outside one).

    Nothing runs if the transaction rolls back. Duplicate requests are cheap: passes are
    level-triggered and single-flight, and the thread runner drops a request already queued.
    """
    transaction.on_commit(lambda: _dispatch(name, args), using=using)
