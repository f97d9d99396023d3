"""Process-level Prometheus series that only the serving process can count (``/metrics``).

Rota's other series are read from the database or the shared cache at scrape time
(``apps.web.metrics``). Websocket connections and the log lines sent over them exist only in the
ASGI process that holds them, so they are counted here, in the process registry; Prometheus scrapes
each web pod and sums. Plain ``prometheus_client`` objects: importing this module registers them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

WEBSOCKETS = Gauge(
    "rota_websocket_connections",
    "Open websocket connections in this process, by endpoint (events: pages; logs: the CLI).",
    ["endpoint"],
)
LOG_LINES = Counter(
    "rota_log_lines_streamed",
    "Log lines sent to viewers over websockets by this process.",
    ["endpoint"],
)


def count_lines(text: str) -> int:
    """Lines in a chunk of log text as sent (a trailing partial line counts as one)."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)
