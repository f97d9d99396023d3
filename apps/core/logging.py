"""Scrub secrets before anything is written: log records, server access logs, error reports.

Tokens may arrive in query strings (the HAI-compatible endpoints accept ``?token=``, as HAI's
client sends it on every call) or in ``Authorization`` headers that end up in error reports; none of
them may reach a log file or an error e-mail. Three doors lead there and each is closed here:

* **Log records** (Django's loggers, ``runserver``'s ``django.server``, daphne's
  ``django.channels.server``, uvicorn's ``uvicorn.access``): ``ScrubTokensFilter`` on every
  handler of ``settings.LOGGING``; those loggers are routed to the scrubbed handler there.
* **Daphne's access log** is not a log record: daphne's command line writes each line straight to a
  stream through ``daphne.access.AccessLogGenerator``. ``install_server_log_scrubbing()`` (run once
  by ``CoreConfig.ready``, i.e. before daphne creates its server) makes that class scrub the
  request line, so a plain ``daphne portal.asgi:application`` is covered too.
* **Error reports** (the 500 e-mail, the debug page) print ``request.GET``, the raw URI and
  ``QUERY_STRING``; ``apps.core.error_reports`` (``DEFAULT_EXCEPTION_REPORTER``) scrubs them.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote_plus

SCRUBBED = "[scrubbed]"
# Query parameter names that carry a credential, in any case.
SECRET_PARAMETERS = frozenset({"token", "access_token", "current_user_token"})

# name=value pairs of a query string (also inside a request line or a quoted URL)
_QUERY_PAIR = re.compile(r"(^|[?&;\s])([^=&?#\s\"']+)=([^&#\s\"';]+)")
_PATTERNS = [
    (re.compile(r"(?i)(Bearer\s+)[A-Za-z0-9_\-\.]+"), r"\1" + SCRUBBED),
    (re.compile(r"\b(rota_[A-Za-z0-9]{8}_)[A-Za-z0-9_\-]{16,}"), r"\1" + SCRUBBED),
    (re.compile(r"\b(ACCESS-[0-9a-f]+-)[A-Za-z0-9_\-]{8,}"), r"\1" + SCRUBBED),
]


def _scrub_pair(match: re.Match[str]) -> str:
    # The name as Django would decode it, so ``%74oken=`` or ``TOKEN=`` is caught too.
    name = unquote_plus(match.group(2)).lower()
    if name in SECRET_PARAMETERS or name.endswith("token"):
        return f"{match.group(1)}{match.group(2)}={SCRUBBED}"
    return match.group(0)


def scrub(text: str) -> str:
    """Replace every token-looking secret in ``text``: query parameters, bearer headers, tokens."""
    text = _QUERY_PAIR.sub(_scrub_pair, text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ScrubTokensFilter(logging.Filter):
    """A handler filter that rewrites a record's message with its secrets scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def install_server_log_scrubbing() -> None:
    """Make daphne's stream access log scrub tokens (idempotent; no-op without daphne)."""
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # pragma: no cover - daphne is a runtime dependency
        return
    if getattr(AccessLogGenerator.write_entry, "rota_scrubbed", False):
        return
    original = AccessLogGenerator.write_entry

    def write_entry(self: Any, host: Any, date: Any, request: str, *args: Any, **kwargs: Any) -> Any:
        return original(self, host, date, scrub(str(request)), *args, **kwargs)

    write_entry.rota_scrubbed = True  # type: ignore[attr-defined]
    AccessLogGenerator.write_entry = write_entry  # type: ignore[method-assign]
