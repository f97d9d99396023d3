"""Cluster inventory API: nodes and node groups for everyone; node writes for cluster admins."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.permissions import IsClusterAdmin
from apps.cluster import selectors, services
from apps.cluster.api import serializers as s
from apps.cluster.filtersets import NodeFilterSet
from apps.cluster.models import Node, NodeGroup
from apps.core.api.typing import AuthedRequest
from apps.core.errors import ApplicationError
from apps.experiments.selectors import node_holders
from apps.quotas.selectors import environments_for


class NodeGroupListView(generics.ListAPIView):
    """Node groups with their node counts."""

    serializer_class = s.NodeGroupSerializer
    pagination_class = None

    def get_queryset(self) -> Any:
        return selectors.node_groups_with_counts()


class NodeHoldersMixin(generics.GenericAPIView):
    """Serializer context with who holds which node (``busy``/``holder``), read once per request."""

    #: the nodes of the page being serialized (set by the list view): holders are read for them only
    page_node_ids: list[int] | None = None

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["holders"] = node_holders(user=self.request.user, node_ids=self.page_node_ids)  # type: ignore[arg-type]
        return context


class NodeListView(NodeHoldersMixin, generics.ListAPIView):
    """Nodes, with the job holding each busy one (its id, name and owner only for jobs you may
    see); filter by `group`, `state` (repeatable), `room`, `gpu_model`, `name`, `min_gpus`."""

    serializer_class = s.NodeSerializer
    filterset_class = NodeFilterSet

    def get_queryset(self) -> Any:
        return selectors.nodes_list()

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        # 25 nodes' holders, not every busy node's (about 40 of a page's 75 ms at 1,500 nodes)
        self.page_node_ids = [node.pk for node in page] if page is not None else None
        return page


class NodeDetailView(NodeHoldersMixin, generics.RetrieveAPIView):
    serializer_class = s.NodeSerializer
    lookup_field = "name"

    def get_queryset(self) -> Any:
        return selectors.nodes_list()


class EnvironmentListView(generics.ListAPIView):
    """Environments (images) I may use, my default first."""

    serializer_class = s.EnvironmentSerializer
    pagination_class = None

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return self.serializer_class.Meta.model.objects.none()
        return environments_for(user=self.request.user)  # type: ignore[arg-type]


def _group_or_error(name: str) -> NodeGroup:
    group = NodeGroup.objects.filter(name=name).first()
    if group is None:
        raise ApplicationError(f"Unknown node group {name!r}.", fields={"group": ["Unknown node group."]})
    return group


class AdminNodeCreateView(APIView):
    """Register a node or update its description (cluster managers and ops)."""

    permission_classes = [IsClusterAdmin]

    @extend_schema(request=s.NodeWriteSerializer, responses={201: s.NodeSerializer})
    def post(self, request: AuthedRequest) -> Response:
        data = s.NodeWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        values["group"] = _group_or_error(values["group"])
        node = services.node_upsert(actor=request.user, **values)
        return Response(
            s.NodeSerializer(node, context={"holders": node_holders(user=request.user)}).data,
            status=status.HTTP_201_CREATED,
        )


class AdminNodeDisableView(APIView):
    """Take a node out of scheduling, with a reason; its jobs are requeued."""

    permission_classes = [IsClusterAdmin]

    @extend_schema(request=s.NodeDisableSerializer, responses=s.NodeSerializer)
    def post(self, request: AuthedRequest, name: str) -> Response:
        node = get_object_or_404(Node, name=name)
        data = s.NodeDisableSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        node = services.node_disable(actor=request.user, node=node, reason=data.validated_data["reason"])
        return Response(s.NodeSerializer(node, context={"holders": node_holders(user=request.user)}).data)


class AdminNodeEnableView(APIView):
    permission_classes = [IsClusterAdmin]

    @extend_schema(request=None, responses=s.NodeSerializer)
    def post(self, request: AuthedRequest, name: str) -> Response:
        node = get_object_or_404(Node, name=name)
        node = services.node_enable(actor=request.user, node=node)
        return Response(s.NodeSerializer(node, context={"holders": node_holders(user=request.user)}).data)
