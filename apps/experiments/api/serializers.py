from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.priorities import Priority
from apps.experiments.actions import chain_actions, may_act
from apps.experiments.choices import ChainAction, EntrypointKind
from apps.experiments.models import Attempt, Chain, Rank
from apps.experiments.selectors import attempt_runtime_seconds
from apps.experiments.services import MAX_RUN_ESTIMATE_SECONDS, MAX_WATCHDOG_SECONDS
from apps.quotas.api.serializers import PriorityField


def priority_name(value: int | None) -> str | None:
    return Priority(value).label if value is not None else None


class PendingSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    queue_position = serializers.IntegerField(allow_null=True)
    infeasible = serializers.BooleanField()
    holders = serializers.ListField(child=serializers.DictField())


def pending_of(attempt: Attempt | None) -> dict[str, Any] | None:
    if attempt is None or not attempt.pending_code:
        return None
    return {
        "code": attempt.pending_code,
        "message": attempt.pending_message,
        "queue_position": attempt.queue_position,
        "infeasible": attempt.infeasible,
        "holders": attempt.pending_holders,
    }


class ChainListSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    group = serializers.CharField(source="node_group.name")
    nodes = serializers.IntegerField(source="node_count")
    priority_name = serializers.SerializerMethodField()
    effective_priority = serializers.SerializerMethodField()
    attempt_id = serializers.IntegerField(source="latest_attempt_id")
    worker_status = serializers.CharField(source="latest_attempt.worker_status", default=None)
    started_at = serializers.DateTimeField(source="latest_attempt.started_at", default=None)
    tags = serializers.SerializerMethodField()
    pending = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField(
        help_text="What you may do to this job now (actions.chain_actions): empty unless it is yours or you are"
        " an admin; the endpoints refuse the others (409 for its state, 403 or 404 for who you are)."
    )

    class Meta:
        model = Chain
        fields = [
            "id",
            "name",
            "owner",
            "status",
            "worker_status",
            "attempt_id",
            "restart_count",
            "group",
            "nodes",
            "priority",
            "priority_name",
            "effective_priority",
            "tags",
            "starred",
            "shared_with_team",
            "created_at",
            "started_at",
            "finished_at",
            "pending",
            "actions",
        ]

    def get_priority_name(self, obj: Chain) -> str | None:
        return priority_name(obj.priority)

    def get_effective_priority(self, obj: Chain) -> int | None:
        return obj.latest_attempt.effective_priority if obj.latest_attempt else None

    def get_tags(self, obj: Chain) -> list[str]:
        return [t.name for t in obj.tags.all()]

    @extend_schema_field(PendingSerializer(allow_null=True))
    def get_pending(self, obj: Chain) -> dict[str, Any] | None:
        return pending_of(obj.latest_attempt)

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=ChainAction.choices)))
    def get_actions(self, obj: Chain) -> list[str]:
        allowed = chain_actions(user=self.context["request"].user, chain=obj)
        return [action.value for action in ChainAction if action in allowed]


class RankSerializer(serializers.ModelSerializer):
    node = serializers.CharField(source="node.name")

    class Meta:
        model = Rank
        fields = ["rank", "node", "status", "exit_code", "message", "gpus", "started_at", "finished_at"]


class AttemptSerializer(serializers.ModelSerializer):
    ranks = RankSerializer(many=True, read_only=True)
    runtime_seconds = serializers.SerializerMethodField()
    pending = serializers.SerializerMethodField()

    class Meta:
        model = Attempt
        fields = [
            "id",
            "index",
            "queue_status",
            "worker_status",
            "priority",
            "effective_priority",
            "whole_life_state",
            "stop_reason",
            "suspend_reason",
            "suspend_state",
            "exit_code",
            "failure_message",
            "created_at",
            "scheduled_at",
            "started_at",
            "finished_at",
            "last_checkpoint_at",
            "runtime_seconds",
            "pending",
            "ranks",
        ]

    def get_runtime_seconds(self, obj: Attempt) -> float:
        return round(attempt_runtime_seconds(obj), 3)

    @extend_schema_field(PendingSerializer(allow_null=True))
    def get_pending(self, obj: Attempt) -> dict[str, Any] | None:
        return pending_of(obj)


class ChainDetailSerializer(ChainListSerializer):
    attempts = AttemptSerializer(many=True, read_only=True)
    environment = serializers.CharField(source="environment_name")
    runtime_seconds = serializers.SerializerMethodField()
    can_act = serializers.SerializerMethodField(help_text="You may act on this job at all (owner or admin).")

    class Meta(ChainListSerializer.Meta):
        fields = [
            *ChainListSerializer.Meta.fields,
            "workspace",
            "entrypoint",
            "kind",
            "parameters",
            "env_vars",
            "environment",
            "whole_life_state",
            "custom_rank",
            "watchdog_seconds",
            "run_estimate_seconds",
            "notes",
            "held",
            "runtime_seconds",
            "can_act",
            "attempts",
        ]

    def get_runtime_seconds(self, obj: Chain) -> float:
        return round(sum(attempt_runtime_seconds(a) for a in obj.attempts.all()), 3)

    def get_can_act(self, obj: Chain) -> bool:
        return may_act(user=self.context["request"].user, chain=obj)


class SubmitSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    workspace = serializers.CharField(max_length=1024)
    entrypoint = serializers.CharField(max_length=1024)
    kind = serializers.ChoiceField(choices=EntrypointKind.choices, default=EntrypointKind.PYTHON)
    parameters = serializers.ListField(child=serializers.CharField(allow_blank=True), default=list)
    env_vars = serializers.DictField(child=serializers.CharField(allow_blank=True), default=dict)
    group = serializers.CharField(max_length=64)
    nodes = serializers.IntegerField(min_value=1, max_value=100_000, default=1)
    priority = PriorityField(default=Priority.AUTO)
    environment = serializers.CharField(required=False, allow_null=True, default=None)
    tags = serializers.ListField(child=serializers.CharField(), default=list)
    watchdog_seconds = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=60, max_value=MAX_WATCHDOG_SECONDS
    )
    # seconds the whole job is expected to run; not a limit (it helps it start sooner on a busy cluster)
    run_estimate_seconds = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=60, max_value=MAX_RUN_ESTIMATE_SECONDS
    )
    whole_life_state = serializers.IntegerField(default=0, min_value=-(2**63), max_value=2**63 - 1)
    custom_rank = serializers.FloatField(required=False, allow_null=True, default=None)
    shared_with_team = serializers.BooleanField(default=False)
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class TagSerializer(serializers.Serializer):
    tag = serializers.CharField(max_length=64)


class PrioritySerializer(serializers.Serializer):
    priority = PriorityField(required=False, allow_null=True, default=None)
    custom_rank = serializers.FloatField(required=False, allow_null=True, default=None)


class ShareSerializer(serializers.Serializer):
    shared = serializers.BooleanField(default=True)
