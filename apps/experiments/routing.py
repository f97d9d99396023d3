"""Websocket routes of experiments (collected by ``portal.routing``)."""

from __future__ import annotations

from django.urls import path

from apps.experiments.consumers import EventsConsumer, LogsConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
    path("ws/logs/<int:chain>/<int:rank>/", LogsConsumer.as_asgi()),
]
