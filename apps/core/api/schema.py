"""OpenAPI schema post-processing: every operation lists the errors it can answer with.

drf-spectacular documents the success responses a view declares; the errors come from one place
(``apps/core/api/exception_handler.py``) and were missing, so clients and schema-driven tests could
not know that, say, a 404 is possible. This hook adds the ``Error`` component (the one error shape)
and, per operation, the statuses the API's plumbing can produce:

- 400 (bad input) for every operation (query parameters, bodies, and bodies that are not JSON);
- 401 and 403 for operations that need authentication (no or a bad token; not allowed);
- 404 for operations with a path parameter (a missing or foreign object), the job-runtime
  endpoints (``?attempt=`` of someone else) and paginated lists (a page past the end);
- 409 for writes (the state changed meanwhile: finished job, duplicate name);
- 429 where requests are rate-limited or sign-ins locked out (the token exchange).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.utils import translation
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView
from rest_framework.request import Request
from rest_framework.response import Response

ERROR_COMPONENT = {
    "type": "object",
    "description": "Every API error: a stable code, a message a user can act on, and per-field messages.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                "retry_after_seconds": {"type": "integer"},
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}
DESCRIPTIONS = {
    "400": "Bad input (the error names the fields).",
    "401": "No valid credentials.",
    "403": "Not allowed.",
    "404": "No such object, or not yours.",
    "409": "Conflicts with the object's current state.",
    "429": "Too many requests or failed sign-ins; retry after `Retry-After` seconds.",
}
WRITES = {"post", "put", "patch", "delete"}
THROTTLED_PATHS = {"/api/v1/auth/token/"}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["400"]
    if operation.get("security") != [{}]:
        statuses += ["401", "403"]
    parameters = {p.get("name") for p in operation.get("parameters", [])}
    if "{" in path or path.startswith("/api/v1/job/") or "page" in parameters:
        statuses.append("404")
    if method in WRITES:
        statuses.append("409")
    if path in THROTTLED_PATHS:
        statuses.append("429")
    return statuses


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular ``POSTPROCESSING_HOOKS`` entry: see the module docstring."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation):
                responses.setdefault(status, {"content": reference, "description": DESCRIPTIONS[status]})
    return result


class CachedSchemaView(SpectacularAPIView):
    """``/api/schema/``: drf-spectacular's view, but the schema is built and rendered once per
    process, language and format instead of on every request (it took 200–500 ms each time).

    The schema depends only on the code (it is served publicly, the same for every caller), so a
    process keeps it until it restarts — which is how new code arrives."""

    @extend_schema(**SCHEMA_KWARGS)  # as drf-spectacular's own view (left out of the schema)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        lang = request.GET.get("lang", "")
        cacheable = (not lang or lang in dict(settings.LANGUAGES)) and not request.GET.get("version")
        key = (lang or translation.get_language(), request.accepted_renderer.format)
        hit = _RENDERED_SCHEMAS.get(key) if cacheable else None
        if hit is not None:
            content, content_type, disposition = hit
            response = HttpResponse(content, content_type=content_type)
            response["Content-Disposition"] = disposition
            return response
        rendered = super().get(request, *args, **kwargs)
        if not cacheable or not isinstance(rendered, Response):
            return rendered
        rendered.accepted_renderer = request.accepted_renderer
        rendered.accepted_media_type = request.accepted_media_type
        rendered.renderer_context = self.get_renderer_context()  # type: ignore[attr-defined]  # as DRF sets it
        rendered.render()
        _RENDERED_SCHEMAS[key] = (rendered.content, rendered["Content-Type"], rendered["Content-Disposition"])
        return rendered


#: (language, format) → (body, content type, content disposition), per process
_RENDERED_SCHEMAS: dict[tuple[str, str], tuple[bytes, str, str]] = {}
