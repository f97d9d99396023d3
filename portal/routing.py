"""Channels routing: websockets need an allowed Origin and an authenticated user.

Consumers are collected from each app's ``routing.websocket_urlpatterns``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

WEBSOCKET_ROUTE_MODULES: list[str] = []


def websocket_urlpatterns() -> list[Any]:
    patterns: list[Any] = []
    for module in WEBSOCKET_ROUTE_MODULES:
        patterns.extend(import_module(module).websocket_urlpatterns)
    return patterns


def build_application(http_app: Any) -> ProtocolTypeRouter:
    return ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns()))),
        }
    )
