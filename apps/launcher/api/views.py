"""Logs and metrics of a job: read by byte cursor across attempts, search across ranks, download."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.typing import AuthedRequest
from apps.core.errors import ApplicationError, NotFound
from apps.experiments.choices import ChainStatus
from apps.experiments.models import Attempt, Chain, MetricPoint
from apps.experiments.selectors import chain_get, log_attempt_ids
from apps.launcher.backends import get_log_store
from apps.launcher.logstore import ChainCursor, SearchTimeout

MAX_LIMIT = 1024 * 1024
KEY = OpenApiParameter("key", str, OpenApiParameter.PATH, description="Chain id, or the name of one of your jobs.")


def _int(request: AuthedRequest, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApplicationError(f"{name} must be a whole number.", fields={name: ["Not a number."]}) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and {maximum}" if maximum is not None else ""
        raise ApplicationError(f"{name} must be between {minimum}{bound}.", fields={name: ["Out of range."]})
    return value


def _attempts(chain: Chain) -> list[int]:
    return log_attempt_ids(chain=chain)


def parse_cursor(text: str, attempt_ids: list[int]) -> ChainCursor:
    try:
        attempt_text, offset_text = text.split(":", 1)
        cursor = ChainCursor(int(attempt_text), int(offset_text))
    except ValueError:
        raise ApplicationError(
            "cursor must look like <attempt id>:<byte offset>.", fields={"cursor": ["Invalid."]}
        ) from None
    if cursor.attempt_id not in attempt_ids or cursor.offset < 0:
        raise ApplicationError("cursor does not belong to this job.", fields={"cursor": ["Invalid."]})
    return cursor


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
        rank = _int(request, "rank", 0, maximum=chain.node_count - 1)
        limit = _int(request, "limit", 65536, minimum=1, maximum=MAX_LIMIT)
        ids = _attempts(chain)
        store = get_log_store()
        cursor_text = request.query_params.get("cursor")
        tail = request.query_params.get("tail")
        if cursor_text:
            cursor: ChainCursor | None = parse_cursor(cursor_text, ids)
        elif tail not in (None, ""):
            nbytes = _int(request, "tail", 65536, minimum=1, maximum=MAX_LIMIT)
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
        ids = _attempts(chain)
        attempt_id = _int(request, "attempt", ids[-1], minimum=1)
        if attempt_id not in ids:
            raise NotFound("No such attempt of this job.")
        query = request.query_params.get("q", "")
        truthy = {"1", "true", "yes", "on"}
        try:
            result = get_log_store().search(
                str(chain.pk),
                attempt_id,
                list(range(chain.node_count)),
                query,
                regex=request.query_params.get("regex", "").lower() in truthy,
                case_sensitive=request.query_params.get("case", "").lower() in truthy,
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
        ids = _attempts(chain)
        rank = _int(request, "rank", 0, maximum=chain.node_count - 1)
        attempt_id = _int(request, "attempt", ids[-1], minimum=1)
        if attempt_id not in ids:
            raise NotFound("No such attempt of this job.")
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


class MetricsSeriesView(APIView):
    """Metrics the job logged (`log_metrics`), as one series per name across all its attempts."""

    @extend_schema(parameters=[KEY], responses={200: dict})
    def get(self, request: AuthedRequest, key: str) -> Response:
        chain = chain_get(user=request.user, key=key)
        series: dict[str, list[dict[str, Any]]] = defaultdict(list)
        rows = (
            MetricPoint.objects.filter(attempt__chain=chain)
            .order_by("name", "attempt__index", "step", "id")
            .values_list("name", "attempt_id", "step", "value", "recorded_at")
        )
        for name, attempt_id, step, value, recorded_at in rows.iterator(chunk_size=2000):
            series[name].append({"attempt_id": attempt_id, "step": step, "value": value, "t": recorded_at.isoformat()})
        return Response({"chain_id": chain.pk, "series": dict(series)})
