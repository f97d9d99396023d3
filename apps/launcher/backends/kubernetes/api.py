"""HTTP plumbing shared by the informers, the log followers and the backend.

Every call goes out with ``_preload_content=False`` and is parsed here as plain JSON (the client's
model classes are slow and drop unknown fields); long-lived responses are tracked so ``close`` can
cut them from another thread.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

BACKOFF_MIN = 0.1
BACKOFF_MAX = 10.0
CONNECT_TIMEOUT = 10.0


class Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


def raise_for_status(resp: Any) -> None:
    status = getattr(resp, "status", 200)
    if isinstance(status, int) and not 200 <= status < 300:
        raise ApiException(status=status, reason=getattr(resp, "reason", None))


def read_json(resp: Any) -> Any:
    try:
        raise_for_status(resp)
        body = resp.data
        return json.loads(body) if body else {}
    finally:
        with contextlib.suppress(Exception):
            resp.release_conn()


def abort(resp: Any) -> None:
    """Unblock a thread reading ``resp`` (a long-lived watch or log stream) from another thread."""
    try:
        resp.shutdown()  # urllib3 >= 2.3
    except Exception:  # fall back to the raw socket
        with contextlib.suppress(Exception):
            resp.connection.sock.shutdown(socket.SHUT_RDWR)


def describe(exc: BaseException) -> str:
    """A log-safe description: status and reason only, never a response body (it may echo env)."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason or ''}".strip()
    return type(exc).__name__


class Streams:
    """Open long-lived responses, so ``close`` can cut them."""

    def __init__(self, closing: threading.Event) -> None:
        self._closing = closing
        self._lock = threading.Lock()
        self._open: set[Any] = set()

    @contextlib.contextmanager
    def track(self, resp: Any) -> Iterator[Any]:
        with self._lock:
            self._open.add(resp)
        if self._closing.is_set():
            abort(resp)
        try:
            yield resp
        finally:
            with self._lock:
                self._open.discard(resp)
            with contextlib.suppress(Exception):
                resp.close()
            with contextlib.suppress(Exception):
                resp.release_conn()

    def abort_all(self) -> None:
        with self._lock:
            responses = list(self._open)
        for resp in responses:
            abort(resp)
