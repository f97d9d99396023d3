"""Pages of one rank's log for the log viewer: forwards from a byte offset, backwards to one, or
the tail of an attempt. Never more than one page of a file is read (``LogStore.read`` seeks).

Unlike the API's chain-wide cursor (which reads across attempts and inserts separator lines),
a page here is always within one attempt, so the viewer knows the byte offset of every line it
shows: it links to a line as ``?attempt=<id>&at=<offset>`` and can scroll backwards from any
position, in any attempt.
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from django.utils.translation import gettext as _

from apps.core.errors import ApplicationError
from apps.experiments.models import Attempt, Chain
from apps.launcher.backends import get_log_store

DEFAULT_LIMIT = 64 * 1024
MAX_LIMIT = 1024 * 1024
MODES = ("forward", "backward", "tail")


def _int(params: QueryDict, name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise ApplicationError(_("%(name)s must be a whole number.") % {"name": name}) from None
    if not minimum <= value <= maximum:
        raise ApplicationError(
            _("%(name)s must be between %(lo)d and %(hi)d.") % {"name": name, "lo": minimum, "hi": maximum}
        )
    return value


def read_log_page(chain: Chain, params: QueryDict) -> dict[str, Any]:
    """``rank``, ``attempt`` (id; default the latest), ``mode`` (forward | backward | tail),
    ``offset`` (bytes: where to start, or where a backward page ends), ``limit`` (bytes)."""
    attempts = list(Attempt.objects.filter(chain=chain).order_by("index").values_list("pk", "index", "worker_status"))
    if not attempts:
        raise ApplicationError(_("This job has no attempt yet."), status=404)
    ids = [a[0] for a in attempts]
    rank = _int(params, "rank", 0, minimum=0, maximum=chain.node_count - 1)
    attempt_id = _int(params, "attempt", ids[-1], minimum=1, maximum=2**62)
    if attempt_id not in ids:
        raise ApplicationError(_("No such attempt of this job."), status=404)
    mode = params.get("mode", "forward")
    if mode not in MODES:
        raise ApplicationError(_("mode must be forward, backward or tail."))
    limit = _int(params, "limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = _int(params, "offset", 0, minimum=0, maximum=2**62)
    store = get_log_store()
    key = str(chain.pk)
    if mode == "tail":
        chunk = store.read(key, attempt_id, rank, offset=-limit, limit=limit)
        data, start, end, size = chunk.data, chunk.offset, chunk.next_offset, chunk.size
    elif mode == "backward":
        begin = max(0, offset - limit)
        chunk = store.read(key, attempt_id, rank, offset=begin, limit=max(1, offset - begin))
        data, start, end, size = chunk.data, chunk.offset, chunk.next_offset, chunk.size
        if offset == 0:
            data, end = "", 0
        elif start > 0:
            # The page may begin inside a line: drop that piece (it is shown with the page before).
            cut = data.find("\n")
            if 0 <= cut < len(data) - 1:
                start += len(data[: cut + 1].encode("utf-8"))
                data = data[cut + 1 :]
    else:
        chunk = store.read(key, attempt_id, rank, offset=offset, limit=limit)
        data, start, end, size = chunk.data, chunk.offset, chunk.next_offset, chunk.size
    chain.refresh_from_db(fields=["finished", "status", "latest_attempt"])
    index = ids.index(attempt_id)
    return {
        "chain_id": chain.pk,
        "rank": rank,
        "attempt_id": attempt_id,
        "attempt_number": attempts[index][1] + 1,
        "attempt_status": attempts[index][2],
        "attempt_ids": ids,
        "data": data,
        "start": start,
        "end": end,
        "size": size,
        "bof": start == 0,
        "eof": end >= size,
        "status": chain.status,
        "finished": chain.finished,
    }
