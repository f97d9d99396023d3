"""The whole ASGI application (HTTP and websockets) served by uvicorn from a thread of the test process.

pytest-django's ``live_server`` speaks WSGI only, so pages fall back to polling and the CLI cannot
follow a log over its websocket. This server runs ``portal.routing.build_application`` — the
same stack daphne serves in production — in the test process, so it shares the test's settings
overrides, database and channel layer, and events sent by services in the test thread reach its
websockets.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn


class AsgiServer:
    """Start with ``start()``; ``url`` is ``http://127.0.0.1:<port>``; ``stop()`` joins the thread."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            ws="websockets-sansio",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="test-asgi-server", daemon=True)
        self._error: BaseException | None = None
        self.url = ""

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve())
        except BaseException as exc:  # reported by start()
            self._error = exc

    def start(self, timeout: float = 20.0) -> AsgiServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the test ASGI server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test ASGI server did not start within {timeout}s")
            time.sleep(0.02)  # polling a flag uvicorn sets; not a wait for a result
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(20)


def build_test_application() -> Any:
    """The production ASGI stack, with static files served as ``runserver`` does."""
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
    from django.core.asgi import get_asgi_application

    from portal.routing import build_application

    return build_application(ASGIStaticFilesHandler(get_asgi_application()))
