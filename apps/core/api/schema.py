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
