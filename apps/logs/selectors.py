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
from apps.logs import params as p
from apps.logs.store import get_log_store

MODES = ("forward", "backward", "tail")


def read_log_page(chain: Chain, params: QueryDict) -> dict[str, Any]:
    """``rank``, ``attempt`` (id; default the latest), ``mode`` (forward | backward | tail),
    ``offset`` (bytes: where to start, or where a backward page ends), ``limit`` (bytes)."""
    attempts = list(Attempt.objects.filter(chain=chain).order_by("index").values_list("pk", "index", "worker_status"))
    if not attempts:
        raise ApplicationError(_("This job has no attempt yet."), status=404)
    ids = [a[0] for a in attempts]
    rank = p.rank_param(params, chain.node_count)
    attempt_id = p.attempt_param(params, ids)
    mode = params.get("mode", "forward")
    if mode not in MODES:
        raise ApplicationError(_("mode must be forward, backward or tail."))
    limit = p.int_param(params, "limit", p.DEFAULT_PAGE_BYTES, minimum=1, maximum=p.MAX_PAGE_BYTES)
    offset = p.int_param(params, "offset", 0)
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
