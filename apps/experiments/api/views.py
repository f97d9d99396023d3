"""Experiments API: submit, list, detail and actions. Views validate and call one service."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.typing import AuthedRequest
from apps.experiments import selectors, services
from apps.experiments.api import serializers as s
from apps.experiments.filtersets import ChainFilterSet
from apps.experiments.models import MetricPoint

KEY = OpenApiParameter("key", str, OpenApiParameter.PATH, description="Chain id, or the name of one of your jobs.")


def _detail(request: AuthedRequest, key: str) -> Response:
    chain = selectors.chain_detail(user=request.user, key=key)
    return Response(s.ChainDetailSerializer(chain, context={"request": request}).data)


class ExperimentListCreateView(generics.ListAPIView):
    """My jobs and jobs shared with my team: one row per chain (its latest attempt).

    Filters: `status` (repeatable; exact statuses or the groups `pending`, `active`, `finished`),
    `name` (substring), `tag` (comma-separated: all must match), `starred`, `group`, `priority`,
    `owner`, `created_after`, `created_before`; `ordering` (e.g. `-id`, `priority`). POST submits a job.
    """

    serializer_class = s.ChainListSerializer
    filterset_class = ChainFilterSet

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return selectors.Chain.objects.none()
        return selectors.chain_list(user=self.request.user)  # type: ignore[arg-type]

    @extend_schema(request=s.SubmitSerializer, responses={201: s.ChainDetailSerializer})
    def post(self, request: AuthedRequest) -> Response:
        data = s.SubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        chain = services.experiment_submit(user=request.user, **data.validated_data)
        chain = selectors.chain_detail(user=request.user, key=chain.pk)
        return Response(
            s.ChainDetailSerializer(chain, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


class ExperimentDetailView(APIView):
    """One job: its attempts, ranks and nodes, and why it waits (code, message, position, holders)."""

    @extend_schema(parameters=[KEY], responses=s.ChainDetailSerializer)
    def get(self, request: AuthedRequest, key: str) -> Response:
        return _detail(request, key)


class _ActionView(APIView):
    action_name = ""

    def act(self, request: AuthedRequest, chain: Any) -> None:
        raise NotImplementedError  # each subclass defines its action

    @extend_schema(parameters=[KEY], request=None, responses=s.ChainDetailSerializer)
    def post(self, request: AuthedRequest, key: str) -> Response:
        chain = selectors.chain_get(user=request.user, key=key)
        self.act(request, chain)
        return _detail(request, str(chain.pk))


class StopView(_ActionView):
    """Stop: a waiting job is canceled at once; a running one is stopped by the launcher."""

    def act(self, request: AuthedRequest, chain: Any) -> None:
        services.experiment_stop(actor=request.user, chain=chain)


class SuspendView(_ActionView):
    """Suspend: the job gets the suspend notice, checkpoints, and waits (held) until resumed."""

    def act(self, request: AuthedRequest, chain: Any) -> None:
        services.experiment_suspend(actor=request.user, chain=chain)


class ResumeView(_ActionView):
    """Resume a suspended (held) job, or start a new attempt of a stopped or failed one."""

    def act(self, request: AuthedRequest, chain: Any) -> None:
        services.experiment_resume(actor=request.user, chain=chain)


class TagView(APIView):
    """POST adds a tag; DELETE (`?tag=`) removes it."""

    @extend_schema(parameters=[KEY], request=s.TagSerializer, responses=s.ChainDetailSerializer)
    def post(self, request: AuthedRequest, key: str) -> Response:
        chain = selectors.chain_get(user=request.user, key=key)
        data = s.TagSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.experiment_tag(user=request.user, chain=chain, tag=data.validated_data["tag"])
        return _detail(request, str(chain.pk))

    @extend_schema(
        parameters=[KEY, OpenApiParameter("tag", str, OpenApiParameter.QUERY, required=True)],
        responses=s.ChainDetailSerializer,
    )
    def delete(self, request: AuthedRequest, key: str) -> Response:
        chain = selectors.chain_get(user=request.user, key=key)
        data = s.TagSerializer(data={"tag": request.query_params.get("tag", "")})
        data.is_valid(raise_exception=True)
        services.experiment_untag(user=request.user, chain=chain, tag=data.validated_data["tag"])
        return _detail(request, str(chain.pk))


class StarView(APIView):
    """POST stars a job; DELETE unstars it."""

    @extend_schema(parameters=[KEY], request=None, responses=s.ChainDetailSerializer)
    def post(self, request: AuthedRequest, key: str) -> Response:
        chain = selectors.chain_get(user=request.user, key=key)
        services.experiment_star(user=request.user, chain=chain, starred=True)
        return _detail(request, str(chain.pk))

    @extend_schema(parameters=[KEY], responses=s.ChainDetailSerializer)
    def delete(self, request: AuthedRequest, key: str) -> Response:
        chain = selectors.chain_get(user=request.user, key=key)
        services.experiment_star(user=request.user, chain=chain, starred=False)
        return _detail(request, str(chain.pk))


class PriorityView(APIView):
    """Change priority (name or number) and/or custom rank; once per 10 s per job."""

    @extend_schema(parameters=[KEY], request=s.PrioritySerializer, responses=s.ChainDetailSerializer)
    def post(self, request: AuthedRequest, key: str) -> Response:
        chain = selectors.chain_get(user=request.user, key=key)
        data = s.PrioritySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.experiment_set_priority(user=request.user, chain=chain, **data.validated_data)
        return _detail(request, str(chain.pk))


class ShareView(APIView):
    """Share a job with your team (read-only for them), or stop sharing (`{"shared": false}`)."""

    @extend_schema(parameters=[KEY], request=s.ShareSerializer, responses=s.ChainDetailSerializer)
    def post(self, request: AuthedRequest, key: str) -> Response:
        chain = selectors.chain_get(user=request.user, key=key)
        data = s.ShareSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.experiment_share(user=request.user, chain=chain, shared=data.validated_data["shared"])
        return _detail(request, str(chain.pk))


class MetricsSeriesView(APIView):
    """Metrics the job logged (`log_metrics`), as one series per name across all its attempts."""

    @extend_schema(parameters=[KEY], responses={200: dict})
    def get(self, request: AuthedRequest, key: str) -> Response:
        chain = selectors.chain_get(user=request.user, key=key)
        series: dict[str, list[dict[str, Any]]] = defaultdict(list)
        rows = (
            MetricPoint.objects.filter(attempt__chain=chain)
            .order_by("name", "attempt__index", "step", "id")
            .values_list("name", "attempt_id", "step", "value", "recorded_at")
        )
        for name, attempt_id, step, value, recorded_at in rows.iterator(chunk_size=2000):
            series[name].append({"attempt_id": attempt_id, "step": step, "value": value, "t": recorded_at.isoformat()})
        return Response({"chain_id": chain.pk, "series": dict(series)})
