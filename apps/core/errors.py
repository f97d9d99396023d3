"""The one business error type. Services raise it; the API maps it to HTTP once."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A failure a user can act on: ``message`` says what went wrong and what to do.

    ``status`` is the HTTP status the API answers with (400 unless said otherwise);
    ``code`` is a stable machine-readable identifier; ``fields`` maps input fields to messages.
    """

    status = 400
    default_code = "invalid"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: dict[str, list[str]] | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.fields = fields or {}
        if status is not None:
            self.status = status
        self.extra = extra or {}


class NotFound(ApplicationError):
    status = 404
    default_code = "not_found"


class PermissionDenied(ApplicationError):
    status = 403
    default_code = "permission_denied"


class Conflict(ApplicationError):
    status = 409
    default_code = "conflict"


class RateLimited(ApplicationError):
    status = 429
    default_code = "rate_limited"
