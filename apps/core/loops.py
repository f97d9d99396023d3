"""Seconds-level safety nets: periodic scheduling and reconcile passes.

django-q2's own schedules tick at minute granularity, so a small loop per kind calls the pass
every few seconds; the passes are single-flight through their lease, so running these loops in
several processes is harmless. Event-triggered passes still run right after the events.

Embedded profile: ``start_background_loops()`` runs them as threads of the server process (the
in-memory channel layer only reaches that process). Production: ``manage.py rota_worker``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from apps.core import passes
from apps.core.tasks import run_now

logger = logging.getLogger(__name__)

PASSES = {
    "scheduler": (passes.SCHEDULE, lambda: settings.ROTA_SCHEDULER["PASS_INTERVAL_SECONDS"]),
    "launcher": (passes.RECONCILE, lambda: settings.ROTA_LAUNCHER["PASS_INTERVAL_SECONDS"]),
    "containers": (
        passes.CONTAINER_RECONCILE,
        lambda: settings.ROTA_LAUNCHER["PASS_INTERVAL_SECONDS"],
    ),
}

_started = False
_lock = threading.Lock()
stop_event = threading.Event()


def heartbeat(name: str) -> None:
    """Touch ``ROTA_WORKER_HEARTBEAT_DIR/<name>``: this loop came round (a pass that hangs stops it,
    and the worker's liveness probe then restarts the container)."""
    directory = settings.ROTA_WORKER_HEARTBEAT_DIR
    if not directory:
        return
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        path = Path(directory) / name
        path.touch()
        os.utime(path)
    except OSError:
        logger.exception("cannot write the heartbeat file of the %s loop", name)


def loop(name: str, stop: threading.Event) -> None:
    task, interval = PASSES[name]
    while not stop.is_set():
        began = time.monotonic()
        try:
            close_old_connections()
            run_now(task)
        except Exception:
            logger.exception("%s pass failed; retrying", name)
        finally:
            close_old_connections()
        heartbeat(name)  # also after a failed pass: the loop is alive, the pass will be retried
        stop.wait(max(0.05, interval() - (time.monotonic() - began)))


def start_background_loops() -> list[threading.Thread]:
    """Start one daemon thread per pass kind in this process (once)."""
    global _started
    with _lock:
        if _started:
            return []
        _started = True
    threads = []
    for name in PASSES:
        thread = threading.Thread(target=loop, args=(name, stop_event), name=f"rota-{name}-loop", daemon=True)
        thread.start()
        threads.append(thread)
    return threads
