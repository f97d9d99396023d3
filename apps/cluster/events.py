"""Typed realtime events of the cluster inventory. Unknown fields are rejected at construction.

Sent to the ``admins`` group (``portal.realtime.ADMINS_GROUP``) after commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class NodeStateChanged:
    """A node became ready, not ready (observed by the backend) or disabled/enabled (an admin)."""

    type: str = field(default="node.state", init=False)
    node_id: int
    name: str
    group: str
    state: str
    previous_state: str
    reason: str
