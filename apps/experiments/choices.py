"""States and reasons of experiments. Never bare strings for states."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class EntrypointKind(models.TextChoices):
    PYTHON = "python", _("Python script")
    BASH = "bash", _("Bash script")
    EXECUTABLE = "executable", _("Executable")


class QueueStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")  # waiting for nodes
    SCHEDULED = "scheduled", _("Scheduled")  # holds nodes (starting, running, suspending, stopping)
    FINISHED = "finished", _("Finished")  # this attempt is over (the chain may go on in a new attempt)


class WorkerStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    STARTING = "starting", _("Starting")
    RUNNING = "running", _("Running")
    SUSPENDING = "suspending", _("Suspending")
    STOPPING = "stopping", _("Stopping")
    SUSPENDED = "suspended", _("Suspended")  # final for the attempt; the chain was requeued
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    STOPPED = "stopped", _("Stopped")
    CANCELED = "canceled", _("Canceled")  # stopped before it ever started


FINAL_WORKER_STATUSES = frozenset(
    {WorkerStatus.SUSPENDED, WorkerStatus.SUCCEEDED, WorkerStatus.FAILED, WorkerStatus.STOPPED, WorkerStatus.CANCELED}
)
HOLDING_WORKER_STATUSES = frozenset(
    {WorkerStatus.STARTING, WorkerStatus.RUNNING, WorkerStatus.SUSPENDING, WorkerStatus.STOPPING}
)

# worker status → statuses it may move to (everything else is refused by conditional updates)
TRANSITIONS: dict[str, frozenset[str]] = {
    WorkerStatus.QUEUED: frozenset({WorkerStatus.STARTING, WorkerStatus.CANCELED}),
    WorkerStatus.STARTING: frozenset(
        {
            WorkerStatus.RUNNING,
            WorkerStatus.SUSPENDING,
            WorkerStatus.STOPPING,
            WorkerStatus.SUSPENDED,
            WorkerStatus.FAILED,
            WorkerStatus.SUCCEEDED,
            WorkerStatus.STOPPED,
        }
    ),
    WorkerStatus.RUNNING: frozenset(
        {
            WorkerStatus.SUSPENDING,
            WorkerStatus.STOPPING,
            WorkerStatus.SUCCEEDED,
            WorkerStatus.FAILED,
            WorkerStatus.SUSPENDED,
            WorkerStatus.STOPPED,
        }
    ),
    WorkerStatus.SUSPENDING: frozenset(
        {
            WorkerStatus.SUSPENDED,
            WorkerStatus.STOPPING,
            WorkerStatus.STOPPED,
            WorkerStatus.FAILED,
            WorkerStatus.SUCCEEDED,
        }
    ),
    WorkerStatus.STOPPING: frozenset({WorkerStatus.STOPPED, WorkerStatus.FAILED, WorkerStatus.SUCCEEDED}),
}


class ChainStatus(models.TextChoices):
    """What users see of a chain (HAI's chain_status, plus held and infeasible)."""

    WAITING = "waiting", _("Waiting")  # queued, never ran
    SUSPENDED = "suspended", _("Suspended")  # queued again after a suspend
    HELD = "held", _("Held")  # suspended by a person; waits for resume
    STARTING = "starting", _("Starting")
    RUNNING = "running", _("Running")
    SUSPENDING = "suspending", _("Suspending")
    STOPPING = "stopping", _("Stopping")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    STOPPED = "stopped", _("Stopped")
    CANCELED = "canceled", _("Canceled")


#: chain statuses whose latest attempt is queued (the rest carry their attempt's worker status)
QUEUED_CHAIN_STATUSES = frozenset({ChainStatus.WAITING, ChainStatus.SUSPENDED, ChainStatus.HELD})


class ChainAction(models.TextChoices):
    """What a person may do to a chain. Which of them a user may do now: ``actions.chain_actions``."""

    STOP = "stop", _("Stop")  # a waiting job is canceled, a running one stopped
    MARK_OUTCOME = "mark_outcome", _("Stop as succeeded or failed")  # HAI's stop --succeeded / --failed
    SUSPEND = "suspend", _("Suspend")
    RESUME = "resume", _("Resume")  # a held job may run again; a stopped, failed or canceled one is retried
    SET_PRIORITY = "set_priority", _("Change priority")  # and the custom rank ("move to the front")
    MOVE_GROUP = "move_group", _("Move to another node group")
    EDIT = "edit", _("Edit tags, star, notes and sharing")


class StopReason(models.TextChoices):
    USER = "user", _("Stopped by its owner")
    ADMIN = "admin", _("Stopped by an admin")
    RANK_FAILED = "rank_failed", _("A rank failed")
    HUNG = "hung", _("No output for longer than the watchdog time")
    START_FAILED = "start_failed", _("Could not be started")
    LOST = "lost", _("Its processes disappeared")
    COMPLETED = "completed", _("Every rank finished")
    MARKED_SUCCEEDED = "marked_succeeded", _("Stopped and marked succeeded by a person")
    MARKED_FAILED = "marked_failed", _("Stopped and marked failed by a person")


def stopped_outcome(stop_reason: str) -> str:
    """The final status of an attempt whose stop finished (its processes are gone): failed for a
    hung job or one a person marked failed, succeeded for one marked succeeded, else stopped."""
    if stop_reason in (StopReason.HUNG, StopReason.MARKED_FAILED):
        return WorkerStatus.FAILED
    if stop_reason == StopReason.MARKED_SUCCEEDED:
        return WorkerStatus.SUCCEEDED
    return WorkerStatus.STOPPED


class SuspendReason(models.TextChoices):
    PREEMPTED = "preempted", _("Preempted by a higher-priority job")
    TIME_SHARE = "time_share", _("Time-shared with another user's job of equal priority")
    OVER_QUOTA = "over_quota", _("Its owner's quota was lowered below what their jobs held")
    USER = "user", _("Suspended by its owner")
    ADMIN = "admin", _("Suspended by an admin")
    NODE_NOT_READY = "node_not_ready", _("A node it ran on became unusable")
    NODE_DRAINED = "node_drained", _("A node it ran on was drained by an admin")
    UNSCHEDULABLE = "unschedulable", _("Its ranks could not start in time")
    SELF = "self", _("The job asked to be suspended (go_suspend)")


class SuspendState(models.IntegerChoices):
    """HAI's suspend_code: how far the suspend protocol went."""

    NONE = 0, _("No suspend")
    REQUESTED = 1, _("Suspend requested")
    ACKNOWLEDGED = 2, _("The job saw the notice")
    READY = 3, _("The job called go_suspend()")


class RankStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    KILLED = "killed", _("Killed")
