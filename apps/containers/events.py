"""Typed realtime events of development containers. Unknown fields are rejected at construction."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class ContainerChanged:
    """A container's status (or what it shows) changed; pages re-render its row."""

    type: str = field(default="container.status", init=False)
    container_id: int
    owner_id: int
    name: str
    status: str
    desired: str
    node: str
    message: str
    stop_reason: str
    idle_warned: bool
