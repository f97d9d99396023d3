"""Password guessing: after too many failed sign-ins, refuse more for a while.

Both doors that take a password — the portal's sign-in form and ``POST /api/v1/auth/token/`` (what
``rota login`` calls) — go through here. Failures are counted per account (the user name, case
folded, hashed so no user name sits in the cache in clear) and per client address, in a fixed
window that starts at the first failure (``ROTA_SIGNIN``: ``MAX_FAILURES_PER_ACCOUNT`` and
``MAX_FAILURES_PER_ADDRESS`` within ``WINDOW_SECONDS``). Once over either limit, every attempt —
even with the right password — is refused until the window ends; the refusal says when to try
again. A successful sign-in clears its account's count.

Counts live in the cache (Redis in production, shared by every server process; the embedded
profile's single process uses local memory) with atomic ``incr``: two racing failures both count.
The address is ``REMOTE_ADDR``; behind a proxy, have it set the real client address.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

PREFIX = "signin-guard"


def _now() -> float:
    return time.time()


@dataclass(frozen=True)
class Lockout:
    """A refusal: why, and in how many seconds a new attempt may succeed."""

    retry_after: int
    message: str


class Limits(NamedTuple):
    per_account: int
    per_address: int
    window: int


def _limits() -> Limits:
    config = settings.ROTA_SIGNIN
    return Limits(
        int(config["MAX_FAILURES_PER_ACCOUNT"]), int(config["MAX_FAILURES_PER_ADDRESS"]), int(config["WINDOW_SECONDS"])
    )


def _account_key(username: str) -> str:
    return f"{PREFIX}:account:{hashlib.sha256(username.strip().casefold().encode()).hexdigest()[:32]}"


def _address_key(address: str) -> str:
    return f"{PREFIX}:address:{address}"


def client_address(request: HttpRequest | None) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown") if request is not None else "unknown"


def _over(key: str, limit: int) -> int | None:
    """Seconds left in the window if ``key`` reached ``limit`` failures, else ``None``."""
    count = cache.get(f"{key}:n") or 0
    if count < limit:
        return None
    started = cache.get(f"{key}:t")
    window = _limits().window
    if started is None:
        return window
    return max(1, math.ceil(started + window - _now()))


def check(username: str, request: HttpRequest | None) -> Lockout | None:
    """A ``Lockout`` if this account or address has failed too often lately, else ``None``."""
    limits = _limits()
    wait = _over(_account_key(username), limits.per_account) if username else None
    scope = "account"
    address_wait = _over(_address_key(client_address(request)), limits.per_address)
    if address_wait is not None and (wait is None or address_wait > wait):
        wait, scope = address_wait, "address"
    if wait is None:
        return None
    minutes = max(1, math.ceil(wait / 60))
    later = ngettext("Try again in %(n)d minute.", "Try again in %(n)d minutes.", minutes) % {"n": minutes}
    if scope == "account":
        reason = _("Too many failed sign-ins for this account.")
    else:
        reason = _("Too many failed sign-ins from your address.")
    return Lockout(retry_after=wait, message=f"{reason} {later}")


def _count(key: str, window: int) -> None:
    cache.add(f"{key}:t", _now(), timeout=window)  # the window starts at the first failure
    cache.add(f"{key}:n", 0, timeout=window)
    try:
        cache.incr(f"{key}:n")
    except ValueError:  # expired between add and incr: start again
        cache.set(f"{key}:n", 1, timeout=window)


def record_failure(username: str, request: HttpRequest | None) -> None:
    window = _limits().window
    if username:
        _count(_account_key(username), window)
    _count(_address_key(client_address(request)), window)


def record_success(username: str) -> None:
    key = _account_key(username)
    cache.delete_many([f"{key}:n", f"{key}:t"])
