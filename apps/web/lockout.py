"""The response to a sign-in refused for password guessing (``AXES_LOCKOUT_CALLABLE``).

django-axes decides (see ``apps/accounts/lockout.py``); this builds what the client sees: 429 with
``Retry-After``, the API's JSON error shape under ``/api/``, the sign-in page with the message for
the portal and the Django admin.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse

from apps.accounts.lockout import lockout_message, lockout_seconds
from apps.core.api.exception_handler import error_body
from apps.web.forms import SignInForm


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """The refusal: 429 with ``Retry-After``, JSON for the API (django-axes calls this with
    ``(request, credentials)`` on its async path, so neither later argument is relied on)."""
    message = lockout_message()
    retry_after = lockout_seconds()
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse(error_body("throttled", message, retry_after_seconds=retry_after), status=429)
    else:
        form = SignInForm(request)
        form.errors["__all__"] = form.error_class([message])
        response = TemplateResponse(request, "registration/login.html", {"form": form, "next": ""}, status=429)
        response.render()
    response["Retry-After"] = str(retry_after)
    return response
