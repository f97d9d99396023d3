"""Containers API: list, create, detail, edit, delete, actions, per-service logs, quota use.

Views validate input and call one service; who may see or act is decided by the selectors and
services (the owner, or a platform admin; others are told the container does not exist).
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.containers import selectors, services
from apps.containers.api import serializers as s
from apps.containers.layout import service_slots
from apps.containers.models import Container
from apps.core.api.typing import AuthedRequest
from apps.core.errors import ApplicationError, NotFound
from apps.launcher.backends import get_container_log_store
from apps.launcher.backends.container_base import run_key

KEY = OpenApiParameter("key", str, OpenApiParameter.PATH, description="Container id, or the name of one of yours.")


def container_by_key(user: Any, key: str) -> Container:
    if key.isdigit():
        return selectors.container_get(user=user, pk=int(key))
    return selectors.container_get(user=user, name=key)


def _out(request: AuthedRequest, container: Container, code: int = 200) -> Response:
    fresh = selectors.container_get(user=request.user, pk=container.pk)
    return Response(s.ContainerSerializer(fresh).data, status=code)


class ContainerListCreateView(APIView):
    """My containers (admins: `?all=1` for everyone's). POST creates one (started unless `start`
    is false); quota errors answer 403 with code `quota_exceeded`."""

    @extend_schema(
        parameters=[OpenApiParameter("all", bool, description="Admins: every user's containers.")],
        responses=s.ContainerSerializer(many=True),
    )
    def get(self, request: AuthedRequest) -> Response:
        qs = selectors.containers_visible_to(request.user).prefetch_related("services")
        if not (request.user.is_platform_admin and request.query_params.get("all") in ("1", "true")):
            qs = qs.filter(owner=request.user)
        return Response(s.ContainerSerializer(qs.order_by("name", "pk"), many=True).data)

    @extend_schema(request=s.ContainerWriteSerializer, responses={201: s.ContainerSerializer})
    def post(self, request: AuthedRequest) -> Response:
        data = s.ContainerWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        container = services.container_create(actor=request.user, **data.validated_data)
        return _out(request, container, status.HTTP_201_CREATED)


class ContainerDetailView(APIView):
    """One container. PATCH edits it (a running one keeps its spec until restarted); DELETE deletes it."""

    @extend_schema(parameters=[KEY], responses=s.ContainerSerializer)
    def get(self, request: AuthedRequest, key: str) -> Response:
        return _out(request, container_by_key(request.user, key))

    @extend_schema(parameters=[KEY], request=s.ContainerUpdateSerializer, responses=s.ContainerSerializer)
    def patch(self, request: AuthedRequest, key: str) -> Response:
        container = container_by_key(request.user, key)
        data = s.ContainerUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        container = services.container_update(actor=request.user, container=container, **changes)
        return _out(request, container)

    @extend_schema(parameters=[KEY], responses={204: None})
    def delete(self, request: AuthedRequest, key: str) -> Response:
        services.container_delete(actor=request.user, container=container_by_key(request.user, key))
        return Response(status=status.HTTP_204_NO_CONTENT)


class _ActionView(APIView):
    def act(self, request: AuthedRequest, container: Container) -> Container:
        raise NotImplementedError  # each subclass defines its action

    @extend_schema(parameters=[KEY], request=None, responses=s.ContainerSerializer)
    def post(self, request: AuthedRequest, key: str) -> Response:
        container = self.act(request, container_by_key(request.user, key))
        return _out(request, container)


class StartView(_ActionView):
    """Start: queued for a node (the quota is checked first)."""

    def act(self, request: AuthedRequest, container: Container) -> Container:
        return services.container_start(actor=request.user, container=container)


class StopView(_ActionView):
    """Stop: its services end and its node share is freed; it can be started again."""

    def act(self, request: AuthedRequest, container: Container) -> Container:
        return services.container_stop(actor=request.user, container=container)


class RestartView(_ActionView):
    """Restart with the current spec (edits made since the start apply)."""

    def act(self, request: AuthedRequest, container: Container) -> Container:
        return services.container_restart(actor=request.user, container=container)


class KeepView(_ActionView):
    """Keep an idle container: answers the idle warning; the idle clock starts again."""

    def act(self, request: AuthedRequest, container: Container) -> Container:
        return services.container_keep(actor=request.user, container=container)


class ServiceRestartView(APIView):
    """Restart one service of a running container."""

    @extend_schema(parameters=[KEY], request=None, responses=s.ContainerSerializer)
    def post(self, request: AuthedRequest, key: str, service: str) -> Response:
        container = container_by_key(request.user, key)
        services.container_restart_service(actor=request.user, container=container, service=service)
        return _out(request, container)


class ContainerLogsView(APIView):
    """One service's log of the current (or a given) run, by byte offset: pass `next_offset` back
    as `offset` to follow it."""

    @extend_schema(
        parameters=[
            KEY,
            OpenApiParameter("service", str, description="Service name (default: jupyter)."),
            OpenApiParameter("run", int, description="Run number (default: the latest)."),
            OpenApiParameter("offset", int),
            OpenApiParameter("limit", int, description="Bytes, at most 1 MiB."),
        ],
        responses=s.ContainerLogSerializer,
    )
    def get(self, request: AuthedRequest, key: str) -> Response:
        container = container_by_key(request.user, key)
        service = request.query_params.get("service") or "jupyter"
        try:
            run = int(request.query_params.get("run") or container.run)
            offset = max(0, int(request.query_params.get("offset") or 0))
            limit = min(1 << 20, max(1, int(request.query_params.get("limit") or 65536)))
        except ValueError:
            raise ApplicationError(_("run, offset and limit must be whole numbers.")) from None
        if run < 1 or run > container.run:
            raise NotFound(_("This container has no such run yet."))
        spec = container.started_spec if run == container.run else {}
        slots = {slot.name: slot.rank for slot in service_slots(spec or {})}
        if service not in slots:
            raise NotFound(_("No service %(s)s in this run.") % {"s": service})
        store = get_container_log_store()
        chunk = store.read(str(container.pk), run_key(container.pk, run), slots[service], offset, limit)
        return Response(
            {
                "service": service,
                "run": run,
                "data": chunk.data,
                "offset": chunk.offset,
                "next_offset": chunk.next_offset,
                "eof": chunk.eof,
            }
        )


class ContainerQuotaView(APIView):
    """My container use against my quota, per node group."""

    @extend_schema(responses=s.QuotaUseSerializer(many=True))
    def get(self, request: AuthedRequest) -> Response:
        return Response(s.QuotaUseSerializer(selectors.quota_overview(user=request.user), many=True).data)
