"""The one door to the channel layer: events are sent after commit, never on rollback.

Services build a typed event (each app's ``events.py``) and call ``send_event_on_commit(groups,
event)``. Consumers only authenticate, join groups (``user.<id>``, ``chain.<id>``, ``admins``) and
forward. This module imports no app.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

ADMINS_GROUP = "admins"


class Event(Protocol):
    type: str

    def payload(self) -> dict[str, Any]: ...


def event_body(event: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        body = dataclasses.asdict(event)
    else:
        body = dict(event.payload())
    body["type"] = event.type
    return body


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def chain_group(chain_id: int) -> str:
    return f"chain.{chain_id}"


def _send(groups: tuple[str, ...], body: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "rota.event", "event": body}
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, message)
        except Exception:  # a realtime hiccup must never break a committed write
            logger.exception("could not send %s to %s", body.get("type"), group)


def send_event_on_commit(groups: Iterable[str], event: Any) -> None:
    """Send ``event`` to ``groups`` once the current transaction commits (at once outside one)."""
    body = event_body(event)
    targets = tuple(dict.fromkeys(groups))
    transaction.on_commit(lambda: _send(targets, body))
