"""Channels routing: websockets need an allowed Origin and an authenticated user.

Consumers are collected from each app's ``routing.websocket_urlpatterns``. Who is connecting (session
cookie or token; the Origin rule) is settled by ``apps.accounts.ws_auth.websocket_stack``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter

WEBSOCKET_ROUTE_MODULES: list[str] = ["apps.experiments.routing"]


class NoSuchSocket:
    """Any other websocket path: refused at the handshake (HTTP 403), not a server error."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 4404})


def websocket_urlpatterns() -> list[Any]:
    from django.urls import re_path

    patterns: list[Any] = []
    for module in WEBSOCKET_ROUTE_MODULES:
        patterns.extend(import_module(module).websocket_urlpatterns)
    patterns.append(re_path(r"", NoSuchSocket()))  # type: ignore[arg-type]  # an ASGI app, as Channels routes take
    return patterns


def build_application(http_app: Any) -> ProtocolTypeRouter:
    from apps.accounts.ws_auth import websocket_stack

    return ProtocolTypeRouter({"http": http_app, "websocket": websocket_stack(URLRouter(websocket_urlpatterns()))})
