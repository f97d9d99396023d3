"""The qcluster's heartbeat: how its liveness probe tells a live django-q2 cluster from a hung one.

django-q2's sentinel (the cluster's guard process) goes round a loop every ``guard_cycle`` (0.5 s):
it brings dead workers, the monitor and the pusher back, runs the schedules, and saves the
cluster's status to the broker (``Stat.save`` → ``Broker.set_stat``, which ``qinfo`` and
``qmonitor`` read). ``HeartbeatRedis`` is django-q2's Redis broker (``Q_CLUSTER['broker_class']``,
production) that also touches ``ROTA_WORKER_HEARTBEAT_DIR/qcluster`` each time the sentinel saves
its status, at most every ``TOUCH_INTERVAL_SECONDS``: the file's age is the time since the guard
loop last came round. A hung sentinel (a deadlocked guard, a pool it can no longer restart) stops
it, and the probe in deploy/kubernetes/rota.yaml restarts the container.

The file is touched whether or not Redis took the status: liveness is about this process, and a
Redis outage is the readiness checks' business (``/readyz``); restarting the cluster would not
bring Redis back. Nothing is written when ``ROTA_WORKER_HEARTBEAT_DIR`` is empty.
"""

from __future__ import annotations

import time

from django_q.brokers.redis_broker import Redis

from apps.core.loops import heartbeat

HEARTBEAT_NAME = "qcluster"
TOUCH_INTERVAL_SECONDS = 5.0


class HeartbeatRedis(Redis):
    """django-q2's Redis broker whose ``set_stat`` (the sentinel's status save) is a heartbeat."""

    _last_touch: float | None = None

    def set_stat(self, key: str, value: str, timeout: int) -> None:
        try:
            super().set_stat(key, value, timeout)
        finally:
            now = time.monotonic()
            if self._last_touch is None or now - self._last_touch >= TOUCH_INTERVAL_SECONDS:
                self._last_touch = now
                heartbeat(HEARTBEAT_NAME)
