"""Experiments: a chain of attempts, and one record per rank of an attempt.

A **chain** is what a user submitted and addresses (by id or name). Each run of it is an
**attempt** with its own id; a suspend ends the attempt and queues a new one in the same chain,
carrying ``whole_life_state``. A finished attempt never changes again: every state change is a
conditional update from the states it may come from (``choices.TRANSITIONS``; see
``apps.experiments.transitions``).

A **rank** holds its node while ``holds_node`` is true. A partial unique constraint on
``(node) WHERE holds_node`` makes double-booking a node impossible at the database level, whatever
two scheduler passes do at the same moment.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.cluster.models import Environment, Node, NodeGroup
from apps.core.priorities import Priority
from apps.experiments.choices import (
    ChainStatus,
    EntrypointKind,
    QueueStatus,
    RankStatus,
    StopReason,
    SuspendReason,
    SuspendState,
    WorkerStatus,
)


class Chain(models.Model):
    """One submitted job and everything that happened to it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chains")
    name = models.CharField(_("name"), max_length=200)
    workspace = models.CharField(_("workspace"), max_length=1024)
    entrypoint = models.CharField(_("entrypoint"), max_length=1024)
    kind = models.CharField(_("kind"), max_length=16, choices=EntrypointKind.choices, default=EntrypointKind.PYTHON)
    parameters = models.JSONField(_("parameters"), default=list, blank=True)
    env_vars = models.JSONField(_("environment variables"), default=dict, blank=True)
    node_group = models.ForeignKey(NodeGroup, on_delete=models.PROTECT, related_name="chains")
    node_count = models.PositiveIntegerField(_("nodes"))
    priority = models.IntegerField(_("requested priority"), choices=Priority.choices, default=Priority.AUTO)
    environment = models.ForeignKey(Environment, null=True, on_delete=models.SET_NULL, related_name="chains")
    environment_name = models.CharField(max_length=64, help_text=_("As submitted; kept if the environment is deleted."))
    custom_rank = models.FloatField(_("custom rank"), null=True, blank=True)
    watchdog_seconds = models.PositiveIntegerField(_("watchdog (s)"), null=True, blank=True)
    # The owner's estimate of the job's whole run time (all attempts together). Not a limit: the scheduler
    # uses it to start small jobs first among long-waiting ones, and to backfill (``policy.Waiting.run_estimate``).
    run_estimate_seconds = models.PositiveIntegerField(_("expected run time (s)"), null=True, blank=True)
    whole_life_state = models.BigIntegerField(_("whole-life state"), default=0)
    starred = models.BooleanField(_("starred"), default=False)
    shared_with_team = models.BooleanField(_("shared with team"), default=False)
    notes = models.TextField(_("notes"), blank=True)
    held = models.BooleanField(default=False, help_text=_("Suspended by a person: waits for resume."))
    finished = models.BooleanField(default=False, db_index=True)
    status = models.CharField(_("status"), max_length=16, choices=ChainStatus.choices, default=ChainStatus.WAITING)
    restart_count = models.PositiveIntegerField(default=0)
    latest_attempt = models.ForeignKey("Attempt", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    priority_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"], condition=Q(finished=False), name="chain_unique_unfinished_name"
            ),
            models.CheckConstraint(condition=Q(node_count__gte=1), name="chain_node_count_positive"),
        ]
        indexes = [
            models.Index(fields=["owner", "-id"]),
            models.Index(fields=["owner", "status"]),
            models.Index(fields=["status"]),
            # A user's unfinished jobs, newest first (the dashboard's list): without it PostgreSQL
            # walks the primary key backwards through everyone's finished jobs (issue 19).
            models.Index(fields=["owner", "-id"], condition=Q(finished=False), name="chain_owner_unfinished"),
            # Jobs shared with the team, per owner: the team side of the visibility rule (``owner =
            # me OR (owner IN team-mates AND shared)``) reads these instead of all the team-mates' jobs.
            models.Index(fields=["owner", "-id"], condition=Q(shared_with_team=True), name="chain_owner_shared"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def tag_names(self) -> list[str]:
        return sorted(t.name for t in self.tags.all())


class ChainTag(models.Model):
    chain = models.ForeignKey(Chain, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=64)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["chain", "name"], name="chain_tag_unique")]
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return self.name


class Attempt(models.Model):
    """One run of a chain. Its states only move forward (see ``choices.TRANSITIONS``)."""

    chain = models.ForeignKey(Chain, on_delete=models.CASCADE, related_name="attempts")
    index = models.PositiveIntegerField(help_text=_("0 for the first attempt of the chain, then 1, 2 …"))
    queue_status = models.CharField(max_length=16, choices=QueueStatus.choices, default=QueueStatus.QUEUED)
    worker_status = models.CharField(max_length=16, choices=WorkerStatus.choices, default=WorkerStatus.QUEUED)
    priority = models.IntegerField(choices=Priority.choices, help_text=_("Requested (AUTO allowed)."))
    effective_priority = models.IntegerField(null=True, blank=True, help_text=_("Resolved when scheduled; aged."))
    quota_priority = models.IntegerField(null=True, blank=True, help_text=_("The quota level it is charged to."))
    whole_life_state = models.BigIntegerField(default=0)
    stop_reason = models.CharField(max_length=16, choices=StopReason.choices, blank=True)
    suspend_reason = models.CharField(max_length=16, choices=SuspendReason.choices, blank=True)
    suspend_state = models.IntegerField(choices=SuspendState.choices, default=SuspendState.NONE)
    suspend_requested_at = models.DateTimeField(null=True, blank=True)
    suspend_for = models.BigIntegerField(null=True, blank=True, help_text=_("Attempt that preempted it."))
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    last_checkpoint_at = models.DateTimeField(null=True, blank=True)
    # the scheduler asked the job to save a checkpoint soon (a waiting job will suspend it right after);
    # cleared when the job reports one
    checkpoint_requested_at = models.DateTimeField(null=True, blank=True)
    watchdog_seconds = models.PositiveIntegerField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    # Not scheduled before this: the back-off after an attempt whose ranks could not start.
    not_before = models.DateTimeField(null=True, blank=True)
    # Scheduler's explanation while it waits (rewritten every pass it changes).
    pending_code = models.CharField(max_length=32, blank=True)
    pending_message = models.CharField(max_length=500, blank=True)
    queue_position = models.PositiveIntegerField(null=True, blank=True)
    pending_holders = models.JSONField(default=list, blank=True)
    pending_digest = models.CharField(
        max_length=24,
        blank=True,
        help_text=_("Fingerprint of the stored explanation: passes compare it, not the text."),
    )
    infeasible = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["chain_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "index"], name="attempt_unique_index"),
            # At most one unfinished attempt per chain.
            models.UniqueConstraint(
                fields=["chain"], condition=~Q(queue_status=QueueStatus.FINISHED), name="attempt_one_unfinished"
            ),
        ]
        indexes = [
            models.Index(fields=["queue_status"]),
            models.Index(fields=["worker_status"]),
            # Usage over a period (/monitor/usage/) reads the attempts that ended in or after it.
            models.Index(fields=["finished_at"], name="attempt_finished_at"),
            # The last day's preemptions (/monitor/scheduler/), newest first; only asked-to-suspend rows.
            models.Index(
                fields=["suspend_requested_at"],
                name="attempt_suspend_requested_at",
                condition=Q(suspend_requested_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"attempt {self.pk} of chain {self.chain_id}"

    @property
    def is_finished(self) -> bool:
        return self.queue_status == QueueStatus.FINISHED


class Rank(models.Model):
    """One node's share of an attempt."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="ranks")
    rank = models.PositiveIntegerField()
    node = models.ForeignKey(Node, on_delete=models.PROTECT, related_name="ranks")
    holds_node = models.BooleanField(default=True)
    suspend_ready = models.BooleanField(default=False, help_text=_("This rank called go_suspend()."))
    gpus = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=RankStatus.choices, default=RankStatus.PENDING)
    exit_code = models.IntegerField(null=True, blank=True)
    message = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["attempt_id", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "rank"], name="rank_unique_per_attempt"),
            models.UniqueConstraint(fields=["node"], condition=Q(holds_node=True), name="rank_node_held_once"),
        ]

    def __str__(self) -> str:
        return f"rank {self.rank} of attempt {self.attempt_id} on {self.node_id}"


class MetricPoint(models.Model):
    """One ``log_metrics(step, **values)`` call of a job, per attempt (served as series per chain)."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="metrics")
    step = models.BigIntegerField()
    name = models.CharField(max_length=64)
    value = models.FloatField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["attempt_id", "name", "step"]
        indexes = [models.Index(fields=["attempt", "name", "step"])]

    def __str__(self) -> str:
        return f"{self.name}@{self.step} = {self.value}"
