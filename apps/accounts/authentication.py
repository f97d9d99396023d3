"""``Authorization: Bearer <token>`` for the API; sessions stay for the browser.

Failures say exactly what is wrong (unknown, revoked, expired, inactive user) with a 401 so the CLI
can tell the user what to do. ``last_used_at`` is written at most once a minute per token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.accounts import tokens
from apps.accounts.models import ApiToken

LAST_USED_RESOLUTION = timedelta(seconds=60)


def authenticate_raw_token(raw: str) -> tuple[Any, ApiToken]:
    """Resolve a raw token to ``(user, token)`` or raise ``AuthenticationFailed`` saying why."""
    prefix = tokens.parse(raw)
    if prefix is None:
        raise exceptions.AuthenticationFailed(_("Malformed token: expected rota_<prefix>_<secret>."))
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not tokens.matches(raw, token.digest):
        raise exceptions.AuthenticationFailed(_("Unknown token: it may have been mistyped or deleted."))
    if token.is_revoked:
        raise exceptions.AuthenticationFailed(_("This token was revoked. Create a new one under Account → Tokens."))
    if token.is_expired:
        raise exceptions.AuthenticationFailed(
            _("This token expired at %(when)s. Create a new one.")
            % {"when": token.expires_at.isoformat() if token.expires_at else "?"}
        )
    if not token.user.is_active:
        raise exceptions.AuthenticationFailed(_("The account this token belongs to is deactivated."))
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token.user, token


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid Authorization header: use 'Bearer <token>'."))
        try:
            raw = header[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(_("Invalid characters in the token.")) from exc
        return authenticate_raw_token(raw)

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
