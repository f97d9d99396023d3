"""Token secrets: generation, parsing and digests. No database access here."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string

from django.conf import settings

_ALPHABET = string.ascii_lowercase + string.digits
_TOKEN_RE = re.compile(r"^rota_([a-z0-9]{8})_([A-Za-z0-9_\-]{20,})$")


def generate() -> tuple[str, str]:
    """A new token: ``(prefix, raw)``. ``raw`` is shown to the user once and never stored."""
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    secret = secrets.token_urlsafe(24)
    return prefix, f"{settings.ROTA_TOKEN_PREFIX}{prefix}_{secret}"


def parse(raw: str) -> str | None:
    """The lookup prefix of a well-formed token, or None."""
    match = _TOKEN_RE.match(raw.strip())
    return match.group(1) if match else None


def digest(raw: str) -> str:
    return hashlib.sha256(raw.strip().encode()).hexdigest()


def matches(raw: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(raw), stored_digest)
