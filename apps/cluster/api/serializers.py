from __future__ import annotations

from rest_framework import serializers

from apps.cluster.models import Environment, Node, NodeGroup


class NodeGroupSerializer(serializers.ModelSerializer):
    node_count = serializers.IntegerField(read_only=True)
    ready_count = serializers.IntegerField(read_only=True)
    disabled_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = NodeGroup
        fields = ["id", "name", "description", "node_count", "ready_count", "disabled_count"]


class NodeSerializer(serializers.ModelSerializer):
    group = serializers.CharField(source="group.name")

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
        ]
        read_only_fields = ["id", "state", "state_reason", "state_changed_at"]


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
