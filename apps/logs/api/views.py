"""A job's logs: read by byte cursor across attempts, search across ranks, download."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.typing import AuthedRequest
from apps.core.errors import ApplicationError, NotFound
from apps.experiments.choices import ChainStatus
from apps.experiments.models import Attempt, Chain
from apps.experiments.selectors import chain_get, log_attempt_ids
from apps.logs import params
from apps.logs.store import ChainCursor, SearchTimeout, get_log_store

KEY = OpenApiParameter("key", str, OpenApiParameter.PATH, description="Chain id, or the name of one of your jobs.")


class LogView(APIView):
    """One rank's log across every attempt of the job, by pages.

    Start with no cursor (from the beginning) or `tail=<bytes>` (the end of the latest attempt);
    then pass the returned `cursor` back to read on or to follow. `finished` is true once the job
    has ended and everything was read: nothing more will come. `infeasible` is true while the job
    waits but can never start as it is (its status says why: `GET /api/experiments/{key}/`).
    """

    @extend_schema(
        parameters=[
            KEY,
            OpenApiParameter("rank", int, description="Rank (default 0)."),
            OpenApiParameter("cursor", str, description="<attempt id>:<byte offset> from a previous page."),
            OpenApiParameter("limit", int, description="Bytes per page (default 65536, max 1 MiB)."),
            OpenApiParameter("tail", int, description="Start this many bytes before the end of the latest attempt."),
        ],
        responses={200: dict},
    )
    def get(self, request: AuthedRequest, key: str) -> Response:
        chain = chain_get(user=request.user, key=key)
        query = request.query_params
        rank = params.rank_param(query, chain.node_count)
        limit = params.int_param(query, "limit", params.DEFAULT_PAGE_BYTES, minimum=1, maximum=params.MAX_PAGE_BYTES)
        ids = log_attempt_ids(chain=chain)
        store = get_log_store()
        cursor_text = query.get("cursor")
        tail = query.get("tail")
        if cursor_text:
            cursor: ChainCursor | None = params.parse_cursor(cursor_text, ids)
        elif tail not in (None, ""):
            nbytes = params.int_param(query, "tail", 0, minimum=1, maximum=params.MAX_PAGE_BYTES)
            chunk = store.read(str(chain.pk), ids[-1], rank, offset=-nbytes, limit=nbytes)
            return Response(
                self._body(chain, rank, ids, chunk.data, ChainCursor(ids[-1], chunk.next_offset), chunk.eof)
            )
        else:
            cursor = None
        page = store.read_chain(str(chain.pk), ids, rank, cursor=cursor, limit=limit)
        return Response(self._body(chain, rank, ids, page.data, page.cursor, page.eof))

    @staticmethod
    def _body(chain: Chain, rank: int, ids: list[int], data: str, cursor: ChainCursor, eof: bool) -> dict[str, Any]:
        chain.refresh_from_db(fields=["finished", "status", "latest_attempt"])
        at_latest = cursor.attempt_id == ids[-1]
        # A job that waits but can never start as it is (its quota shrank, its nodes went away):
        # a follower stops waiting for it and says so.
        infeasible = (
            chain.status in (ChainStatus.WAITING, ChainStatus.SUSPENDED)
            and chain.latest_attempt_id is not None
            and Attempt.objects.filter(pk=chain.latest_attempt_id, infeasible=True).exists()
        )
        return {
            "chain_id": chain.pk,
            "rank": rank,
            "attempt_ids": ids,
            "data": data,
            "cursor": f"{cursor.attempt_id}:{cursor.offset}",
            "eof": eof,
            "finished": bool(chain.finished and eof and at_latest),
            "status": chain.status,
            "infeasible": infeasible,
        }


class LogSearchView(APIView):
    """Search one attempt's logs across all ranks: matching lines and a count per rank."""

    @extend_schema(
        parameters=[
            KEY,
            OpenApiParameter("q", str, required=True),
            OpenApiParameter("attempt", int, description="Attempt id (default: the latest)."),
            OpenApiParameter("regex", bool),
            OpenApiParameter("case", bool, description="Case-sensitive."),
        ],
        responses={200: dict},
    )
    def get(self, request: AuthedRequest, key: str) -> Response:
        chain = chain_get(user=request.user, key=key)
        query = request.query_params
        attempt_id = params.attempt_param(query, log_attempt_ids(chain=chain))
        try:
            result = get_log_store().search(
                str(chain.pk),
                attempt_id,
                list(range(chain.node_count)),
                query.get("q", ""),
                regex=params.bool_param(query, "regex"),
                case_sensitive=params.bool_param(query, "case"),
                time_budget=settings.ROTA_LAUNCHER["LOG_SEARCH_SECONDS"],
            )
        except SearchTimeout as exc:
            raise ApplicationError(str(exc), code="search_timeout", fields={"q": [str(exc)]}) from exc
        except ValueError as exc:
            raise ApplicationError(str(exc), fields={"q": [str(exc)]}) from exc
        return Response(
            {
                "attempt_id": attempt_id,
                "counts": {str(rank): count for rank, count in sorted(result.counts.items())},
                "ranks_matching": sorted(rank for rank, count in result.counts.items() if count),
                "matches": [
                    {"rank": m.rank, "line": m.line_no, "offset": m.offset, "text": m.text} for m in result.matches
                ],
                "truncated": result.truncated,
            }
        )


class LogDownloadView(APIView):
    """Download one rank's log of one attempt as a text file."""

    @extend_schema(
        parameters=[KEY, OpenApiParameter("rank", int), OpenApiParameter("attempt", int)],
        responses={(200, "text/plain"): bytes},
    )
    def get(self, request: AuthedRequest, key: str) -> Any:
        chain = chain_get(user=request.user, key=key)
        rank = params.rank_param(request.query_params, chain.node_count)
        attempt_id = params.attempt_param(request.query_params, log_attempt_ids(chain=chain))
        try:
            handle = get_log_store().open_for_download(str(chain.pk), attempt_id, rank)
        except FileNotFoundError:
            raise NotFound("This rank has no log yet.") from None
        return FileResponse(
            handle,
            as_attachment=True,
            filename=f"{chain.name}-attempt{attempt_id}-rank{rank}.log",
            content_type="text/plain; charset=utf-8",
        )
