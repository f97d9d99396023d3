"""Typed events of the accounts app, sent after commit through ``portal.realtime``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class UserAccessChanged:
    """What the user may see may have changed (team, groups, role, active flag): their open sockets
    reload the user and re-check every subscription and log follow. Not forwarded to clients."""

    type: str = field(default="user.access", init=False)
    user_id: int


ACCESS_FIELDS = ("team", "groups", "role", "is_active")
"""The fields of a user whose change sends ``UserAccessChanged``."""
