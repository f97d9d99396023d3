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
from collections.abc import Callable, Iterator
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


class ApiCalls:
    """The calls both Kubernetes backends (jobs, containers) make: a JSON body with the shared timeouts,
    a 404 read as "gone", a 409 on create as "already there". Needs ``_request_timeout`` and ``_namespace``."""

    _request_timeout: float
    _namespace: str

    def _request(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        resp = fn(*args, _preload_content=False, _request_timeout=(CONNECT_TIMEOUT, self._request_timeout), **kwargs)
        data = read_json(resp)
        return data if isinstance(data, dict) else {}

    def _ignore_404(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        try:
            return self._request(fn, *args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _create(self, fn: Callable[..., Any], body: dict[str, Any]) -> dict[str, Any] | None:
        """Create in the namespace; ``None`` if it already exists (409)."""
        try:
            return self._request(fn, self._namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise


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
