"""The job runtime API: what a running job calls with its attempt-scoped token (``rota.job``).

Every endpoint acts on the token's own attempt and nothing else; ordinary tokens may call them
too with ``?attempt=<id>`` for their own running attempts (handy for debugging a job by hand).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.choices import TokenScope
from apps.accounts.models import ApiToken
from apps.core.api.typing import AuthedRequest
from apps.core.errors import ApplicationError, Conflict, NotFound
from apps.experiments import lifecycle, services
from apps.experiments.choices import QueueStatus, WorkerStatus
from apps.experiments.models import Attempt, MetricPoint
from apps.experiments.services import MAX_WATCHDOG_SECONDS

MAX_METRICS_PER_CALL = 100
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # the database's BigIntegerField range


def attempt_of(request: AuthedRequest) -> Attempt:
    token = request.auth if isinstance(request.auth, ApiToken) else None
    if token is not None and token.scope == TokenScope.JOB:
        attempt_id: Any = token.attempt_id
    else:
        attempt_id = request.query_params.get("attempt") or request.data.get("attempt")
        if not str(attempt_id or "").isdigit():
            raise ApplicationError("Say which attempt: ?attempt=<id> (jobs use their ROTA_TASK_TOKEN instead).")
    attempt = Attempt.objects.select_related("chain").filter(pk=int(attempt_id), chain__owner=request.user).first()
    if attempt is None:
        raise NotFound("No such attempt of yours.")
    return attempt


class _RuntimeView(APIView):
    allow_job_token = True


class StateSerializer(serializers.Serializer):
    whole_life_state = serializers.IntegerField(min_value=BIGINT_MIN, max_value=BIGINT_MAX)


class WatchdogSerializer(serializers.Serializer):
    seconds = serializers.IntegerField(min_value=60, max_value=MAX_WATCHDOG_SECONDS)


class MetricsSerializer(serializers.Serializer):
    step = serializers.IntegerField(min_value=0, max_value=BIGINT_MAX)
    values = serializers.DictField(child=serializers.FloatField(), allow_empty=False)

    def validate_values(self, values: dict[str, float]) -> dict[str, float]:
        if len(values) > MAX_METRICS_PER_CALL:
            raise serializers.ValidationError(f"At most {MAX_METRICS_PER_CALL} metrics per call.")
        bad = [k for k in values if not (1 <= len(k) <= 64)]
        if bad:
            raise serializers.ValidationError("Metric names must be 1–64 characters.")
        if any(not k.isprintable() for k in values):
            raise serializers.ValidationError("Metric names must be printable: no NUL or other control characters.")
        return values


class JobStatusView(_RuntimeView):
    """What the job should know now: suspend requested?, checkpoint requested?, whole-life state, restart count."""

    @extend_schema(responses={200: dict})
    def get(self, request: AuthedRequest) -> Response:
        attempt = attempt_of(request)
        suspend = attempt.worker_status in (WorkerStatus.SUSPENDING, WorkerStatus.STOPPING)
        if attempt.worker_status == WorkerStatus.SUSPENDING:
            lifecycle.attempt_acknowledge_suspend(attempt_id=attempt.pk)
        return Response(
            {
                "attempt_id": attempt.pk,
                "chain_id": attempt.chain_id,
                "worker_status": attempt.worker_status,
                "suspend_requested": suspend,
                "checkpoint_requested": attempt.checkpoint_requested_at is not None,
                "whole_life_state": attempt.whole_life_state,
                "restart_count": attempt.index,
            }
        )


class WholeLifeStateView(_RuntimeView):
    """Set the whole-life state carried to the next attempt of the chain."""

    @extend_schema(request=StateSerializer, responses={200: StateSerializer})
    def post(self, request: AuthedRequest) -> Response:
        attempt = attempt_of(request)
        data = StateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not lifecycle.attempt_set_whole_life_state(
            attempt_id=attempt.pk, value=data.validated_data["whole_life_state"]
        ):
            raise Conflict("This attempt has finished; its state can no longer change.")
        return Response(data.validated_data)


class CheckpointView(_RuntimeView):
    """The job saved a checkpoint (the scheduler then prefers it as a victim: it loses least work)."""

    @extend_schema(request=None, responses={200: dict})
    def post(self, request: AuthedRequest) -> Response:
        attempt = attempt_of(request)
        if not lifecycle.attempt_report_checkpoint(attempt_id=attempt.pk):
            raise Conflict("This attempt has finished.")
        return Response({"ok": True})


class GoSuspendSerializer(serializers.Serializer):
    rank = serializers.IntegerField(min_value=0, required=False, allow_null=True, default=None)


class GoSuspendView(_RuntimeView):
    """A rank is ready to be suspended now (`{"rank": n}`; no rank = the whole job). When every
    running rank is ready the nodes are freed at once and the chain is requeued."""

    @extend_schema(request=GoSuspendSerializer, responses={200: dict})
    def post(self, request: AuthedRequest) -> Response:
        attempt = attempt_of(request)
        data = GoSuspendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not lifecycle.attempt_go_suspend(attempt_id=attempt.pk, rank=data.validated_data["rank"]):
            raise Conflict(f"This attempt is {attempt.worker_status}; only a running job can suspend.")
        attempt.refresh_from_db(fields=["suspend_state"])
        return Response({"ok": True, "suspend_state": attempt.suspend_state})


class WatchdogView(_RuntimeView):
    """Stop the job as hung if it prints nothing for this many seconds."""

    @extend_schema(request=WatchdogSerializer, responses={200: WatchdogSerializer})
    def post(self, request: AuthedRequest) -> Response:
        attempt = attempt_of(request)
        data = WatchdogSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not lifecycle.attempt_set_watchdog(attempt_id=attempt.pk, seconds=data.validated_data["seconds"]):
            raise Conflict("This attempt has finished.")
        return Response(data.validated_data)


class MetricsView(_RuntimeView):
    """Record ``log_metrics(step, **values)``."""

    @extend_schema(request=MetricsSerializer, responses={201: dict})
    def post(self, request: AuthedRequest) -> Response:
        attempt = attempt_of(request)
        if attempt.queue_status == QueueStatus.FINISHED:
            raise Conflict("This attempt has finished.")
        data = MetricsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        step = data.validated_data["step"]
        MetricPoint.objects.bulk_create(
            [
                MetricPoint(attempt=attempt, step=step, name=name, value=value)
                for name, value in sorted(data.validated_data["values"].items())
            ]
        )
        return Response({"recorded": len(data.validated_data["values"])}, status=201)


class JobPrioritySerializer(serializers.Serializer):
    priority = serializers.CharField(help_text="A priority name (HIGH) or number (30), as HAI's set_priority takes.")


class JobPriorityView(_RuntimeView):
    """The job changes its own chain's priority (HAI's ``set_priority``): the same rules as the
    owner's change (``experiment_set_priority``: allowed levels, once per 10 s); it applies to the
    attempts after a suspend, the running attempt keeps the level it was admitted at."""

    @extend_schema(request=JobPrioritySerializer, responses={200: dict})
    def post(self, request: AuthedRequest) -> Response:
        attempt = attempt_of(request)
        if attempt.queue_status == QueueStatus.FINISHED:
            raise Conflict("This attempt has finished.")
        data = JobPrioritySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        chain = services.experiment_set_priority(
            user=request.user, chain=attempt.chain, priority=data.validated_data["priority"]
        )
        return Response({"priority": chain.priority})
