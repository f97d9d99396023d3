"""Which Unix account a user's jobs run as.

An admin maps a user to a POSIX account (``User.posix_uid``/``posix_gid``). On the local backend,
where jobs run on the server's own machine, a user without one is matched by name to an account of
that machine (``getpwnam(username)``), as Slurm does; ``root`` and other uid-0 accounts never match.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from django.conf import settings

from apps.accounts.models import User


@dataclass(frozen=True)
class PosixAccount:
    uid: int
    gid: int | None  # None: the uid's own primary group (the image's, on Kubernetes)
    source: str  # "mapped" (set by an admin) or "host" (this machine's account of the same name)


def host_account(username: str) -> PosixAccount | None:
    """This machine's non-root account named ``username``, if there is one."""
    try:
        entry = pwd.getpwnam(username)
    except (KeyError, ValueError):  # ValueError: a name with a NUL
        return None
    if entry.pw_uid == 0:
        return None
    return PosixAccount(uid=entry.pw_uid, gid=entry.pw_gid, source="host")


def posix_account(user: User, *, host_lookup: bool) -> PosixAccount | None:
    """The account ``user``'s jobs run as: the admin's mapping, else (``host_lookup``: the local
    backend) this machine's account of the same name, else None."""
    if user.posix_uid is not None:
        return PosixAccount(uid=user.posix_uid, gid=user.posix_gid, source="mapped")
    return host_account(user.username) if host_lookup else None


def unmapped_owners_refused() -> bool:
    """On the local backend: whether jobs of owners without an account are refused, rather than run
    as the server's user (only a server running as root can run them as anyone else)."""
    return settings.ROTA_BACKEND == "local" and os.geteuid() == 0 and settings.ROTA_LOCAL_UNMAPPED_OWNERS == "refuse"
