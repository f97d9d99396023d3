"""Who is on the other end of a websocket: the browser's session, or the CLI's token.

The stack (outermost first, see ``websocket_stack``):

1. ``OriginCheck`` — a browser always sends ``Origin``; it must be one of ``ALLOWED_HOSTS``
   (Channels' own validator), which stops another site from opening a socket with the user's
   cookie. A connection *without* ``Origin`` comes from a program (the CLI), not a browser: it is
   let through, but marked so its session cookie is ignored and only a token counts.
2. Channels' ``AuthMiddlewareStack`` — the session user from the cookie.
3. ``TokenAuthMiddleware`` — when there is no session user, a bearer token from the
   ``Authorization: Bearer <token>`` header, or from the subprotocol list
   (``Sec-WebSocket-Protocol: rota.v1, rota.token.<token>``; browsers cannot set headers). Never
   from the query string: URLs end up in access logs. The token subprotocol is removed from the
   scope once read, so nothing downstream can echo or log it; consumers accept ``rota.v1``.
   Job tokens (scoped to one attempt) are refused: they are for the job runtime API only.

A failed token leaves the user anonymous and records why in ``scope["auth_error"]``; consumers
refuse anonymous users before accepting, so nothing is sent.

A socket outlives the check made when it opened, so the credential it was opened with is kept in
``scope["rota_auth"]`` and ``credential_problem(scope)`` checks it again: consumers call it every
``ROTA_REALTIME["AUTH_RECHECK_SECONDS"]`` and at the token's expiry, and close the socket (4401)
once the token is revoked, expired or deleted, the session signed out (or its password changed),
or the account deactivated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import import_module
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from rest_framework.exceptions import AuthenticationFailed

from apps.accounts.authentication import authenticate_raw_token
from apps.accounts.choices import TokenScope
from apps.accounts.models import ApiToken, User

PROTOCOL = "rota.v1"
TOKEN_PROTOCOL_PREFIX = "rota.token."  # noqa: S105 - a prefix, not a secret


class OriginCheck(OriginValidator):
    """``Origin``, when present, must be an allowed host; when absent, only a token authenticates."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("OriginCheck only guards websockets")
        has_origin = any(name == b"origin" for name, _ in scope.get("headers", []))
        # The server's own ``send`` (middlewares below wrap it): consumers look at the socket's
        # unsent bytes through it (``apps.experiments.consumers.transport_backlog_probe``).
        scope = {**scope, "rota_browser": has_origin, "rota_server_send": send}
        if not has_origin:
            return await self.application(scope, receive, send)
        return await super().__call__(scope, receive, send)


def _token_from_scope(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin1").split()
            if len(parts) == 2 and parts[0].lower() == "bearer":
                return parts[1]
    for protocol in scope.get("subprotocols", []):
        if protocol.startswith(TOKEN_PROTOCOL_PREFIX):
            return protocol[len(TOKEN_PROTOCOL_PREFIX) :]
    return None


def _scrubbed(scope: dict[str, Any]) -> dict[str, Any]:
    """The scope without the token (header and subprotocol)."""
    return {
        **scope,
        "headers": [(n, v) for n, v in scope.get("headers", []) if n != b"authorization"],
        "subprotocols": [p for p in scope.get("subprotocols", []) if not p.startswith(TOKEN_PROTOCOL_PREFIX)],
    }


@dataclass(frozen=True)
class Credential:
    """What a socket was authenticated with: a token (its id and expiry) or a session (its key)."""

    kind: str  # "token" | "session"
    user_id: int
    token_id: int | None = None
    expires_at: datetime | None = None
    session_key: str | None = None


@database_sync_to_async
def _authenticate(raw: str) -> tuple[Any, str | None, Credential | None]:
    try:
        user, token = authenticate_raw_token(raw)
    except AuthenticationFailed as exc:
        return AnonymousUser(), str(exc.detail), None
    if token.scope == TokenScope.JOB:
        return AnonymousUser(), "Job tokens may only call the job runtime API.", None
    return user, None, Credential("token", user.pk, token_id=token.pk, expires_at=token.expires_at)


def _token_problem(token: ApiToken | None) -> str | None:
    if token is None:
        return _("The token this connection used was deleted. Sign in again.")
    if token.is_revoked:
        return _("The token this connection used was revoked. Sign in again.")
    if token.is_expired:
        return _("The token this connection used expired. Create a new one and reconnect.")
    if not token.user.is_active:
        return _("Your account was deactivated.")
    return None


def _session_problem(credential: Credential, data: dict[str, Any], user: User | None) -> str | None:
    signed_out = _("You were signed out. Sign in again to keep following live updates.")
    if not credential.session_key or str(data.get(SESSION_KEY, "")) != str(credential.user_id):
        return signed_out  # logged out, expired, or flushed
    if user is None or not user.is_active:
        return _("Your account was deactivated.")
    if not constant_time_compare(str(data.get(HASH_SESSION_KEY, "")), user.get_session_auth_hash()):
        return signed_out  # the password changed: Django ends every other session
    return None


def _session_data(keys: set[str]) -> dict[str, dict[str, Any]]:
    """The live sessions among ``keys``, decoded: one query with a database-backed session engine
    (``db``, ``cached_db``: the table is the truth), else one load per key."""
    from django.contrib.sessions.backends.db import SessionStore as DatabaseStore
    from django.utils import timezone

    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if not keys:
        return {}
    if not issubclass(store_class, DatabaseStore):
        loaded = {key: store_class(session_key=key).load() for key in keys}
        return {key: data for key, data in loaded.items() if data}
    rows = store_class.get_model_class().objects.filter(session_key__in=keys, expire_date__gt=timezone.now())
    decoder = store_class()
    return {key: decoder.decode(text) for key, text in rows.values_list("session_key", "session_data")}


@dataclass(frozen=True)
class _Loaded:
    """What the credentials of a batch of sockets refer to, as the database has it now."""

    tokens: dict[int, ApiToken]
    sessions: dict[str, dict[str, Any]]
    users: dict[int, User]

    @classmethod
    def of(cls, credentials: Sequence[Credential | None]) -> _Loaded:
        """At most three queries however many credentials: their tokens with their users, their
        sessions, the sessions' users."""
        token_ids = {c.token_id for c in credentials if c is not None and c.kind == "token" and c.token_id}
        sessions = [c for c in credentials if c is not None and c.kind == "session"]
        user_ids = {c.user_id for c in sessions}
        return cls(
            tokens=ApiToken.objects.select_related("user").in_bulk(token_ids) if token_ids else {},
            sessions=_session_data({c.session_key for c in sessions if c.session_key}),
            users=User.objects.in_bulk(user_ids) if user_ids else {},
        )

    def problem(self, credential: Credential | None) -> str | None:
        if credential is None:
            return None  # not authenticated through this stack (consumers refuse anonymous users)
        if credential.kind == "token":
            return _token_problem(self.tokens.get(credential.token_id or 0))
        session = self.sessions.get(credential.session_key or "", {})
        return _session_problem(credential, session, self.users.get(credential.user_id))


def credential_problems(credentials: Sequence[Credential | None]) -> list[str | None]:
    """``credential_problem`` for many sockets at once, in the order given (database reads: at
    most three queries however many there are)."""
    loaded = _Loaded.of(credentials)
    return [loaded.problem(credential) for credential in credentials]


def credential_problem_texts(checks: Sequence[tuple[Credential | None, str]]) -> list[str | None]:
    """``credential_problems`` for (credential, language) pairs, each problem in its socket's
    language (database reads, batched the same way)."""
    from django.utils import translation

    loaded = _Loaded.of([credential for credential, _language in checks])
    texts: list[str | None] = []
    for credential, language in checks:
        with translation.override(language):
            texts.append(loaded.problem(credential))
    return texts


def scope_language(scope: dict[str, Any]) -> str:
    """The language to speak on this socket, picked as ``LocaleMiddleware`` picks it for a page:
    the language cookie (set from the user's preference at sign-in), then ``Accept-Language``,
    then ``LANGUAGE_CODE``."""
    from django.utils.translation import get_supported_language_variant
    from django.utils.translation.trans_real import parse_accept_lang_header

    candidates: list[str] = []
    cookie = (scope.get("cookies") or {}).get(settings.LANGUAGE_COOKIE_NAME)
    if cookie:
        candidates.append(str(cookie))
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            candidates += [code for code, _quality in parse_accept_lang_header(value.decode("latin-1"))]
    for code in candidates:
        try:
            return get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def credential_problem_text(scope: dict[str, Any], language: str) -> str | None:
    """``credential_problem`` as text in ``language`` (database reads)."""
    return credential_problem_texts([(scope.get("rota_auth"), language)])[0]


def credential_problem(scope: dict[str, Any]) -> str | None:
    """Why the socket's credential no longer holds, or ``None`` while it does (database reads)."""
    return credential_problems([scope.get("rota_auth")])[0]


class TokenAuthMiddleware:
    """Authenticates by bearer token when the session did not (or must not: no ``Origin``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        raw = _token_from_scope(scope)
        scope = _scrubbed(scope)
        user = scope.get("user")
        if not scope.get("rota_browser", True):
            user = AnonymousUser()  # no Origin: not a browser, so the cookie does not count
        auth_error = None
        credential = None
        if user is not None and user.is_authenticated:
            session = scope.get("session")
            credential = Credential("session", user.pk, session_key=getattr(session, "session_key", None))
        elif raw:
            user, auth_error, credential = await _authenticate(raw)
        scope["user"] = user if user is not None else AnonymousUser()
        scope["auth_error"] = auth_error
        scope["rota_auth"] = credential
        return await self.inner(scope, receive, send)


def allowed_origins() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts


def websocket_stack(inner: Any) -> Any:
    """Wrap the websocket router: Origin check, session, token."""
    return OriginCheck(AuthMiddlewareStack(TokenAuthMiddleware(inner)), allowed_origins())
