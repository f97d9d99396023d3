"""Quota API: my resolved quota; admin quota rows (root and quota editors)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import User
from apps.accounts.permissions import IsQuotaAdmin
from apps.cluster.models import Environment, NodeGroup
from apps.core.api.typing import AuthedRequest
from apps.core.errors import ApplicationError
from apps.experiments.selectors import quota_overview
from apps.quotas import services
from apps.quotas.api import serializers as s
from apps.quotas.models import Quota


def my_quota_body(user: User) -> dict[str, Any]:
    """Resolved quota with current use: every level with quota or in use, per node group."""
    overview = quota_overview(user=user)
    quota = overview.resolved
    node_rows = [
        {
            "group": level.group,
            "priority": level.priority,
            "priority_name": level.priority_name,
            "quota": level.quota,
            "limit": level.limit,
            "used": level.used,
        }
        for level in overview.levels
    ]
    jupyter_rows = [
        {"group": g, "containers": j.containers, "cpu": j.cpu, "memory_gib": j.memory_gib}
        for g, j in sorted(quota.jupyter.items())
    ]
    return {
        "node": node_rows,
        "jupyter": jupyter_rows,
        "environments": list(quota.environments),
        "default_environment": quota.default_environment,
    }


class MyQuotaView(APIView):
    """My resolved quota: nodes per (group, priority), dev containers per group, environments."""

    @extend_schema(responses=s.MyQuotaSerializer)
    def get(self, request: AuthedRequest) -> Response:
        return Response(my_quota_body(request.user))


def _lookup(model: Any, field: str, value: str | None, label: str) -> Any:
    if not value:
        return None
    obj = model.objects.filter(**{field: value}).first()
    if obj is None:
        raise ApplicationError(f"Unknown {label} {value!r}.", fields={label.replace(" ", "_"): [f"Unknown {label}."]})
    return obj


class AdminQuotaListCreateView(generics.ListAPIView):
    """Every quota row. POST creates or updates one (audited). Filter with `kind`, `node_group`."""

    permission_classes = [IsQuotaAdmin]
    serializer_class = s.QuotaSerializer
    filterset_fields = ["kind"]

    def get_queryset(self) -> Any:
        qs = Quota.objects.select_related("user", "group", "node_group", "environment").order_by(
            "kind", "resource", "id"
        )
        node_group = self.request.query_params.get("node_group")
        if node_group:
            qs = qs.filter(node_group__name=node_group)
        return qs

    @extend_schema(request=s.QuotaWriteSerializer, responses={201: s.QuotaSerializer})
    def post(self, request: AuthedRequest) -> Response:
        data = s.QuotaWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        quota = services.quota_set(
            actor=request.user,
            user=_lookup(User, "username", v.get("user"), "user"),
            group=_lookup(Group, "name", v.get("group"), "group"),
            kind=v["kind"],
            node_group=_lookup(NodeGroup, "name", v.get("node_group"), "node group"),
            priority=v.get("priority"),
            environment=_lookup(Environment, "name", v.get("environment"), "environment"),
            value=v["value"],
            expires_at=v.get("expires_at"),
        )
        return Response(s.QuotaSerializer(quota).data, status=status.HTTP_201_CREATED)


class AdminQuotaDetailView(APIView):
    permission_classes = [IsQuotaAdmin]

    @extend_schema(responses=s.QuotaSerializer)
    def get(self, request: AuthedRequest, pk: int) -> Response:
        return Response(s.QuotaSerializer(get_object_or_404(Quota, pk=pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthedRequest, pk: int) -> Response:
        services.quota_delete(actor=request.user, quota=get_object_or_404(Quota, pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
