from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.priorities import Priority, parse_priority
from apps.quotas.choices import QuotaKind
from apps.quotas.models import Quota


@extend_schema_field(
    {"oneOf": [{"type": "string", "enum": [p.label for p in Priority]}, {"type": "integer", "enum": Priority.values}]}
)
class PriorityField(serializers.Field):
    """A priority by name ("HIGH") or number (30)."""

    default_error_messages = {"invalid": "{message}"}

    def to_internal_value(self, data: object) -> int:
        try:
            return int(parse_priority(data))  # type: ignore[arg-type]
        except ValueError as exc:
            self.fail("invalid", message=str(exc))
            raise  # unreachable: fail() raises

    def to_representation(self, value: int) -> str:
        return Priority(value).label


class QuotaSerializer(serializers.ModelSerializer):
    subject = serializers.CharField(source="subject_label", read_only=True)
    node_group = serializers.CharField(source="node_group.name", default=None, read_only=True)
    environment = serializers.CharField(source="environment.name", default=None, read_only=True)
    priority_name = serializers.SerializerMethodField()

    class Meta:
        model = Quota
        fields = [
            "id",
            "subject",
            "kind",
            "resource",
            "node_group",
            "priority",
            "priority_name",
            "environment",
            "value",
            "expires_at",
            "updated_at",
        ]

    def get_priority_name(self, obj: Quota) -> str | None:
        return Priority(obj.priority).label if obj.priority is not None else None


class QuotaWriteSerializer(serializers.Serializer):
    user = serializers.CharField(required=False, help_text="User name (give user or group).")
    group = serializers.CharField(required=False, help_text="Group name (give user or group).")
    kind = serializers.ChoiceField(choices=QuotaKind.choices)
    node_group = serializers.CharField(required=False, allow_null=True, default=None)
    priority = PriorityField(required=False, allow_null=True, default=None)
    environment = serializers.CharField(required=False, allow_null=True, default=None)
    value = serializers.IntegerField(min_value=0)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, object]) -> dict[str, object]:
        if bool(attrs.get("user")) == bool(attrs.get("group")):
            raise serializers.ValidationError({"user": ["Give exactly one of user or group."]})
        return attrs


class NodeQuotaRowSerializer(serializers.Serializer):
    group = serializers.CharField()
    priority = serializers.IntegerField()
    priority_name = serializers.CharField()
    quota = serializers.IntegerField(help_text="Effective quota (capped by the limit).")
    limit = serializers.IntegerField(allow_null=True)
    used = serializers.IntegerField(
        help_text="Nodes held now by my starting, running and suspending jobs at this level."
    )


class JupyterQuotaRowSerializer(serializers.Serializer):
    group = serializers.CharField()
    containers = serializers.IntegerField()
    cpu = serializers.IntegerField()
    memory_gib = serializers.IntegerField()


class MyQuotaSerializer(serializers.Serializer):
    node = NodeQuotaRowSerializer(many=True)
    jupyter = JupyterQuotaRowSerializer(many=True)
    environments = serializers.ListField(child=serializers.CharField())
    default_environment = serializers.CharField(allow_null=True)
