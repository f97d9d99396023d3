"""The parameters every log reader takes, parsed in one place: the REST API's pages, search and
download, the portal's log viewer and the log websockets all say ``rank``, ``attempt``, ``limit``,
``tail`` and ``cursor`` and must accept and refuse the same values with the same messages.

Errors are ``ApplicationError`` naming the field (``fields={name: [...]}``), so the API answers 400
with the field marked and a websocket turns the message into its own error frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.utils.translation import gettext as _

from apps.core.errors import ApplicationError
from apps.logs.store import ChainCursor

MAX_OFFSET = 2**62
"""Upper bound for byte offsets and ids: far past any real file, still a valid database integer."""

MAX_PAGE_BYTES = 1024 * 1024
"""A page (``limit``) or tail (``tail``) is at most 1 MiB: a reader never asks for a whole file."""

DEFAULT_PAGE_BYTES = 64 * 1024

TRUTHY = frozenset({"1", "true", "yes", "on"})


def int_param(
    params: Mapping[str, Any], name: str, default: int, *, minimum: int = 0, maximum: int = MAX_OFFSET
) -> int:
    """``params[name]`` as an integer within ``[minimum, maximum]``; ``default`` when absent or empty."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw))
    except ValueError:
        message = _("%(name)s must be a whole number.") % {"name": name}
        raise ApplicationError(message, fields={name: [message]}) from None
    if not minimum <= value <= maximum:
        message = _("%(name)s must be between %(lo)d and %(hi)d.") % {"name": name, "lo": minimum, "hi": maximum}
        raise ApplicationError(message, fields={name: [message]})
    return value


def bool_param(params: Mapping[str, Any], name: str) -> bool:
    """A flag: ``1``, ``true``, ``yes`` or ``on`` (any case) is true, anything else false."""
    return str(params.get(name, "")).lower() in TRUTHY


def rank_param(params: Mapping[str, Any], node_count: int) -> int:
    """``rank``: 0 (the default) up to the job's last rank."""
    return int_param(params, "rank", 0, minimum=0, maximum=node_count - 1)


def attempt_param(params: Mapping[str, Any], attempt_ids: Sequence[int]) -> int:
    """``attempt``: one of ``attempt_ids`` (the job's attempts that have logs); the latest by default."""
    attempt_id = int_param(params, "attempt", attempt_ids[-1], minimum=1)
    if attempt_id not in attempt_ids:
        raise ApplicationError(_("No such attempt of this job."), status=404, code="not_found")
    return attempt_id


def parse_cursor(text: str, attempt_ids: Sequence[int]) -> ChainCursor:
    """``cursor``, ``<attempt id>:<byte offset>`` as returned with a previous page, of one of
    ``attempt_ids``."""
    try:
        attempt_text, offset_text = str(text).split(":", 1)
        cursor = ChainCursor(int(attempt_text), int(offset_text))
    except ValueError:
        message = _("cursor must look like <attempt id>:<byte offset>.")
        raise ApplicationError(message, fields={"cursor": [message]}) from None
    if cursor.attempt_id not in attempt_ids or cursor.offset < 0:
        message = _("cursor does not belong to this job.")
        raise ApplicationError(message, fields={"cursor": [message]})
    return cursor
