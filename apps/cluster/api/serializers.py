from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.cluster.models import Environment, Node, NodeGroup


class NodeGroupSerializer(serializers.ModelSerializer):
    node_count = serializers.IntegerField(read_only=True)
    ready_count = serializers.IntegerField(read_only=True)
    disabled_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = NodeGroup
        fields = ["id", "name", "description", "node_count", "ready_count", "disabled_count"]


class NodeHolderSerializer(serializers.Serializer):
    job = serializers.IntegerField(allow_null=True, help_text="Job id; null when the job is not yours to see.")
    attempt = serializers.CharField(allow_null=True, help_text='"<job>.<attempt>", e.g. "6.2".')
    name = serializers.CharField(allow_null=True)
    owner = serializers.CharField(allow_null=True)


class NodeSerializer(serializers.ModelSerializer):
    """A node; ``busy`` and ``holder`` need ``holders`` (``experiments.selectors.node_holders``) in
    the serializer context."""

    group = serializers.CharField(source="group.name")
    busy = serializers.SerializerMethodField(help_text="A job holds the node now.")
    holder = serializers.SerializerMethodField(help_text="The job holding it (null when idle).")

    class Meta:
        model = Node
        fields = [
            "id",
            "name",
            "group",
            "gpu_count",
            "gpu_model",
            "cpu",
            "memory_bytes",
            "room",
            "state",
            "state_reason",
            "labels",
            "state_changed_at",
            "busy",
            "holder",
        ]
        read_only_fields = ["id", "state", "state_reason", "state_changed_at"]

    def get_busy(self, node: Node) -> bool:
        return node.pk in self.context.get("holders", {})

    @extend_schema_field(NodeHolderSerializer(allow_null=True))
    def get_holder(self, node: Node) -> dict[str, Any] | None:
        holder = self.context.get("holders", {}).get(node.pk)
        return asdict(holder) if holder is not None else None


class NodeWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=253)
    group = serializers.CharField(max_length=64)
    gpu_count = serializers.IntegerField(min_value=0, default=0)
    gpu_model = serializers.CharField(required=False, allow_blank=True, default="")
    cpu = serializers.IntegerField(min_value=0, default=0)
    memory_bytes = serializers.IntegerField(min_value=0, default=0)
    room = serializers.CharField(required=False, allow_blank=True, default="")
    labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict)


class NodeDisableSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255)


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ["id", "name", "image", "description", "env_vars", "interpreter"]
