"""Rota's side of the containers' Ingress: who may pass it, and how a browser gets a ticket for it.

With ``ROTA_CONTAINER_INGRESS_HOST`` set (Kubernetes backend), a container's HTTP services are
served by ingress-nginx on that host, a separate origin from the portal's, so a user's page can
never read the portal's cookies or CSRF token, nor call the portal with them. The portal's session
cookie is not sent there; a **ticket cookie** is, one per container:

1. The browser opens ``https://<containers host>/containers/<user>/<name>/lab``. nginx asks
   ``/containers/auth/`` (``authorize``) with the request's cookies and ``X-Original-URL``.
2. No valid ticket → 401 → nginx sends the browser to ``auth-signin`` = the portal's
   ``/containers/ticket/?rd=<that URL>`` (``signin_redirect``), where the session is: the signed-in
   owner or admin is sent back to ``https://<containers host>/containers/enter/?t=<hand-off>``, a
   60-second signed hand-off naming the user, the container and where to go.
3. ``/containers/enter/`` (``enter``, routed to Rota on the containers host by one static
   Ingress) turns the hand-off into the ticket cookie — host-only on the containers host, path
   ``/containers/<user>/<name>/``, HttpOnly, Secure when the portal is, SameSite=Lax, valid
   ``TICKET_MAX_AGE`` — and redirects to the page asked for.
4. Every request then passes ``authorize``: the ticket's signature, age, user (active, same
   password: the ticket is bound to the session auth hash) and container must match, the user must
   be the owner or an admin and the container running; 200 carries the run's token in
   ``Authorization``, which nginx hands to the upstream only. Refusals: 401 without a valid ticket,
   403 for anyone else or a container not running (nginx turns any other status into 500).

A ticket names one container and is only sent to its paths, so the container's own server, which
does see its visitors' cookies, cannot use a visitor's ticket anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac

from apps.containers.proxy import PATH_RE, lookup

TICKET_COOKIE = "rota_container_ticket"
TICKET_MAX_AGE = 12 * 3600
HANDOFF_MAX_AGE = 60
_TICKET_SALT = "rota.containers.ingress.ticket"
_HANDOFF_SALT = "rota.containers.ingress.handoff"


class IngressRefused(Exception):
    """A sign-in or hand-off that cannot be honoured (a bad or foreign address, an old hand-off)."""


def ingress_host() -> str:
    """The containers host, or "" when containers are reached through the portal's proxy only."""
    if settings.ROTA_BACKEND != "kubernetes":
        return ""
    return str(settings.ROTA_CONTAINERS.get("INGRESS_HOST") or "")


def _scheme() -> str:
    return urlsplit(settings.ROTA_PUBLIC_URL).scheme or "https"


def _user_digest(user: Any) -> str:
    """A digest of the user's session auth hash: a changed password ends every ticket."""
    return salted_hmac(_TICKET_SALT, user.get_session_auth_hash(), algorithm="sha256").hexdigest()[:32]


def _container_path(path: str) -> tuple[str, str, str] | None:
    found = PATH_RE.match(path)
    if found is None or not found["slash"]:
        return None
    return found["user"], found["name"], found["rest"]


def signin_redirect(*, user: Any, rd: str) -> str:
    """Where the portal sends a signed-in browser that nginx sent to sign in: the containers
    host's ``/containers/enter/`` with a 60-second hand-off. Raises ``IngressRefused`` for an
    address not on the containers host or not a container's, and for a container the user may not
    open (as for one that does not exist)."""
    host = ingress_host()
    target = urlsplit(rd)
    place = _container_path(target.path)
    if not host or target.hostname != host or place is None:
        raise IngressRefused("not a container's address")
    owner, name, rest = place
    status, _target, _message = lookup(user, owner, name, rest)
    if status == 404:
        raise IngressRefused("no such container")
    back = target.path + (f"?{target.query}" if target.query else "")
    handoff = signing.dumps(
        {"u": user.pk, "h": _user_digest(user), "c": f"{owner}/{name}", "n": back}, salt=_HANDOFF_SALT
    )
    return f"{_scheme()}://{host}/containers/enter/?{urlencode({'t': handoff})}"


@dataclass(frozen=True)
class Ticket:
    value: str  # the cookie's value
    path: str  # the cookie's path: the container's
    next: str  # where to send the browser


def enter(*, handoff: str) -> Ticket:
    """The ticket cookie for a hand-off made by ``signin_redirect`` less than a minute ago."""
    try:
        data = signing.loads(handoff, salt=_HANDOFF_SALT, max_age=HANDOFF_MAX_AGE)
    except signing.BadSignature:
        raise IngressRefused("the sign-in link is invalid or has expired") from None
    owner, _, name = str(data["c"]).partition("/")
    path = f"/containers/{owner}/{name}/"
    nxt = str(data["n"])
    if not nxt.startswith(path):
        raise IngressRefused("the sign-in link is invalid")
    value = signing.dumps({"u": data["u"], "h": data["h"], "c": data["c"]}, salt=_TICKET_SALT)
    return Ticket(value=value, path=path, next=nxt)


def authorize(*, ticket: str | None, original_url: str) -> tuple[int, str]:
    """(HTTP status, the run's token or "") for one request nginx asks about (module docstring)."""
    place = _container_path(urlsplit(original_url).path)
    if not ticket or place is None:
        return 401, ""
    owner, name, rest = place
    try:
        data = signing.loads(ticket, salt=_TICKET_SALT, max_age=TICKET_MAX_AGE)
    except signing.BadSignature:
        return 401, ""
    if data.get("c") != f"{owner}/{name}":
        return 401, ""
    user = get_user_model().objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or not constant_time_compare(str(data.get("h")), _user_digest(user)):
        return 401, ""
    status, target, _message = lookup(user, owner, name, rest)
    if status != 200 or target is None:
        return 403, ""
    return 200, target.token


__all__ = ["TICKET_COOKIE", "IngressRefused", "Ticket", "authorize", "enter", "ingress_host", "signin_redirect"]
