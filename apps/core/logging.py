"""Logging filter that scrubs secrets before anything is written.

Tokens may arrive in query strings (HAI-compatible endpoints accept ``?token=``) or in
``Authorization`` headers that end up in error reports; neither may reach a log file.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = [
    # ?token=…, &token=…, "token": "…"
    (re.compile(r"(?i)([?&](?:token|access_token|current_user_token)=)[^&\s\"']+"), r"\1[scrubbed]"),
    (re.compile(r"(?i)(Bearer\s+)[A-Za-z0-9_\-\.]+"), r"\1[scrubbed]"),
    (re.compile(r"\b(rota_[A-Za-z0-9]{8}_)[A-Za-z0-9_\-]{16,}"), r"\1[scrubbed]"),
    (re.compile(r"\b(ACCESS-[0-9a-f]+-)[A-Za-z0-9_\-]{8,}"), r"\1[scrubbed]"),
]


def scrub(text: str) -> str:
    """Replace every token-looking secret in ``text``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class ScrubTokensFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
