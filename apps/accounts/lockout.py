"""Password guessing: django-axes counts failed sign-ins and refuses more for a while.

Every door that takes a password goes through Django's ``authenticate()``: the portal's sign-in
form, the Django admin's login (``/django-admin/login/``) and ``POST /api/v1/auth/token/`` (what
``rota login`` calls). django-axes sits there as the first authentication backend
(``axes.backends.AxesStandaloneBackend``), so no door can skip it: it records every failure (in the
database, ``axes.AccessAttempt``, visible to admins in the Django admin) and, once an account or a
client address has failed ``AXES_FAILURE_LIMIT`` times, refuses every attempt — even with the right
password — until ``AXES_COOLOFF_TIME`` has passed since the last one. A success clears its count.

``AxesMiddleware`` turns a refusal into ``apps.web.lockout.lockout_response``: 429 with
``Retry-After``, the API's JSON error shape under ``/api/``, the sign-in page elsewhere. The message is the same for
accounts that exist and accounts that do not (failures for unknown names count and lock alike), so
it reveals nothing about which accounts exist. Settings: ``ROTA_SIGNIN_*`` in ``portal/settings.py``.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import ngettext


def username_of(request: HttpRequest | None, credentials: dict[str, Any] | None) -> str | None:
    """The user name a failure is counted against, case folded: ``Alice`` and ``alice`` share a count."""
    field = getattr(settings, "AXES_USERNAME_FORM_FIELD", "username")  # set by axes.conf at start-up
    raw = (credentials or {}).get(field)
    if raw is None and request is not None:
        raw = request.POST.get(field) if request.method == "POST" else None
    return str(raw).strip().casefold() if raw else None


def lockout_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_message() -> str:
    minutes = max(1, math.ceil(lockout_seconds() / 60))
    return ngettext(
        "Too many failed sign-ins. Try again in %(n)d minute.",
        "Too many failed sign-ins. Try again in %(n)d minutes.",
        minutes,
    ) % {"n": minutes}
