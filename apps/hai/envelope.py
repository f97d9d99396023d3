"""HAI's response envelope and its authentication (``?token=`` in the query string).

Every answer is JSON with ``success`` (1 ok, 0 error, then ``msg`` says why). HAI's client ignores
the HTTP status on most calls, but ``init`` (python-requests) needs 200 on success, so successes are
200 and errors keep Rota's status (403 for an unknown token, 401 for an expired one, 404, 409 …).
The token is taken from the query string only on these endpoints; logs never see it (see
``apps/core/logging.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from apps.accounts.authentication import authenticate_raw_token
from apps.accounts.choices import TokenScope
from apps.accounts.models import ApiToken, User
from apps.core.errors import ApplicationError

HaiView = Callable[..., dict[str, Any]]


class HaiError(ApplicationError):
    """An error answered in HAI's envelope (``status`` as for ``ApplicationError``)."""


def ok(**fields: Any) -> dict[str, Any]:
    return {"success": 1, **fields}


def error_response(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"success": 0, "msg": message}, status=status, json_dumps_params={"ensure_ascii": False})


def authenticate(request: HttpRequest) -> tuple[User, ApiToken]:
    """The user and token of ``?token=``: 403 when missing or unknown, 401 when no longer valid."""
    raw = request.GET.get("token", "").strip()
    if not raw:
        raise HaiError(
            _("No token: pass ?token=<your Rota API token> (run `hai-cli init TOKEN --url URL`)."), status=403
        )
    try:
        user, token = authenticate_raw_token(raw)
    except AuthenticationFailed as exc:
        text = str(exc.detail)
        status = 403 if text.startswith(("Unknown", "Malformed")) else 401
        raise HaiError(text, status=status) from None
    if token.scope == TokenScope.JOB:
        raise HaiError(_("Job tokens may only call the job runtime API."), status=403)
    return user, token


def hai_endpoint(*, write: bool = False, public: bool = False) -> Callable[[HaiView], Callable[..., JsonResponse]]:
    """Wrap a HAI endpoint: POST only, token auth (unless ``public``), errors as HAI's envelope.

    ``write`` endpoints refuse read-only tokens. The wrapped function gets ``(request, user,
    token)`` and returns the success fields.
    """

    def decorate(view: HaiView) -> Callable[..., JsonResponse]:
        @csrf_exempt
        @wraps(view)
        def endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method != "POST":
                return error_response(_("HAI endpoints answer POST only."), status=405)
            try:
                if public:
                    return JsonResponse(view(request, *args, **kwargs), json_dumps_params={"ensure_ascii": False})
                user, token = authenticate(request)
                if write and token.scope == TokenScope.READ_ONLY:
                    raise HaiError(_("This token is read-only."), status=403)
                body = view(request, *args, user=user, token=token, **kwargs)
            except ApplicationError as exc:
                return error_response(exc.message, status=exc.status)
            return JsonResponse(body, json_dumps_params={"ensure_ascii": False})

        return endpoint

    return decorate


def param(request: HttpRequest, name: str, default: str = "") -> str:
    """A query parameter (form-decoded: ``+`` is a space), or ``default``."""
    return request.GET.get(name, default)


def int_param(
    request: HttpRequest,
    name: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """An integer query parameter; a missing or malformed one is an error naming it."""
    raw = request.GET.get(name)
    if raw in (None, "") and default is not None:
        return default
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        raise HaiError(_("%(name)s must be a whole number (got %(value)r).") % {"name": name, "value": raw}) from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise HaiError(
            _("%(name)s must be between %(lo)s and %(hi)s.")
            % {
                "name": name,
                "lo": minimum if minimum is not None else "-∞",
                "hi": maximum if maximum is not None else "∞",
            }
        )
    return value
