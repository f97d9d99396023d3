"""Channels routing: websockets need an allowed Origin and an authenticated user.

Consumers are collected from each app's ``routing.websocket_urlpatterns``. Who is connecting (session
cookie or token; the Origin rule) is settled by ``apps.accounts.ws_auth.websocket_stack``.
Imported once Django is set up (``portal/asgi.py``), so it imports the apps at the top.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.routing import ProtocolTypeRouter, URLRouter
from channels.sessions import SessionMiddlewareStack
from django.urls import re_path

from apps.accounts.ws_auth import websocket_stack
from apps.containers.proxy import ContainerProxy, matches

WEBSOCKET_ROUTE_MODULES: list[str] = ["apps.experiments.routing"]


class NoSuchSocket:
    """Any other websocket path: refused at the handshake (HTTP 403), not a server error."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 4404})


def websocket_urlpatterns() -> list[Any]:
    patterns: list[Any] = []
    for module in WEBSOCKET_ROUTE_MODULES:
        patterns.extend(import_module(module).websocket_urlpatterns)
    patterns.append(re_path(r"", NoSuchSocket()))  # type: ignore[arg-type]  # an ASGI app, as Channels routes take
    return patterns


class ContainerPathRouter:
    """``/containers/<user>/<name>/…`` goes to the containers' reverse proxy (HTTP and websockets,
    authenticated by the session); everything else to ``default``."""

    def __init__(self, proxy: Any, default: Any) -> None:
        self.proxy = proxy
        self.default = default

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        app = self.proxy if matches(scope.get("path", "")) else self.default
        await app(scope, receive, send)


def build_application(http_app: Any) -> ProtocolTypeRouter:
    # The proxy resolves the session's user itself, with its container lookup in one database trip.
    proxy = SessionMiddlewareStack(ContainerProxy())
    return ProtocolTypeRouter(
        {
            "http": ContainerPathRouter(proxy, http_app),
            "websocket": ContainerPathRouter(proxy, websocket_stack(URLRouter(websocket_urlpatterns()))),
        }
    )
