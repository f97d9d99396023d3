"""Error reports (the 500 e-mail to ``ADMINS``, the debug page) without credentials.

Django's reporter prints ``request.GET``, the raw request URI and ``META['QUERY_STRING']`` as they
came; its filter hides settings and POST parameters only. HAI's client sends its token as
``?token=`` on every call, so both are scrubbed here (see ``apps/core/logging.py``).
"""

from __future__ import annotations

from typing import Any

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from apps.core.logging import SCRUBBED, SECRET_PARAMETERS, scrub


def _is_secret_parameter(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_PARAMETERS or lowered.endswith("token")


class TokenSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Django's filter, plus: every string in the request's META has its tokens scrubbed."""

    def get_safe_request_meta(self, request: Any) -> dict[str, Any]:
        meta = super().get_safe_request_meta(request)
        return {key: scrub(value) if isinstance(value, str) else value for key, value in meta.items()}


class TokenSafeExceptionReporter(ExceptionReporter):
    """Django's reporter with token query parameters and token-looking URI parts scrubbed."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        # Frame variables are printed with repr(): a request's repr holds its full path and query.
        for frame in data.get("frames", []):
            if "vars" in frame:
                frame["vars"] = [
                    (name, scrub(value) if isinstance(value, str) else value) for name, value in frame["vars"]
                ]
        if isinstance(data.get("exception_value"), str):
            data["exception_value"] = scrub(data["exception_value"])
        if self.request is not None:
            data["request_GET_items"] = [
                (key, SCRUBBED if _is_secret_parameter(key) else value) for key, value in self.request.GET.items()
            ]
            if data.get("request_insecure_uri"):
                data["request_insecure_uri"] = scrub(str(data["request_insecure_uri"]))
        return data
