"""State the scheduler keeps between passes: each user's decayed recent usage (fair share)."""

from __future__ import annotations

import math
from datetime import datetime

from django.conf import settings
from django.db import models


class UserUsage(models.Model):
    """Node-seconds a user consumed recently, decaying with a half-life (``FAIRSHARE_HALF_LIFE_SECONDS``).

    Stored as (value, as of ``updated_at``); the value at any later time is
    ``value * 2 ** (-(t - updated_at) / half_life)``, so only users who hold nodes are written.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage")
    value = models.FloatField(default=0.0)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user_id}: {self.value:.0f} node-s"

    def value_at(self, when: datetime, half_life: float) -> float:
        return decayed(self.value, (when - self.updated_at).total_seconds(), half_life)


def decayed(value: float, elapsed: float, half_life: float) -> float:
    if half_life <= 0:
        return 0.0
    return value * math.pow(2.0, -max(0.0, elapsed) / half_life)


class SnapshotChange(models.Model):
    """One row the scheduler's snapshot reads was written: the change log of incremental passes.

    Written only by database triggers (migration ``0002_snapshotchange``), on every insert, delete
    and relevant update of attempts, ranks and chains, whatever code path made it (services,
    lifecycle, ``QuerySet.update``, raw SQL). ``xid`` is the writing transaction's id on PostgreSQL
    (null on SQLite, whose single writer makes ``id`` order commit order); a pass re-reads the
    rows it names (``apps/scheduler/snapshot.py``), and prunes the rows every pass has long read.
    """

    id = models.BigAutoField(primary_key=True)
    xid = models.BigIntegerField(null=True, db_index=True)
    attempt_id = models.BigIntegerField(null=True)
    chain_id = models.BigIntegerField(null=True)

    def __str__(self) -> str:
        return f"change {self.pk}: attempt {self.attempt_id}, chain {self.chain_id}"


class LoadSample(models.Model):
    """A node group's load at one minute, as a scheduling pass left it: the overview's charts.

    Written by ``apps.scheduler.history.load_sample_record`` after a pass commits, at most once a
    minute (``minute`` is unique per group, so racing passes cannot write twice), from the pass's
    own snapshot and plan — no extra reads but the nodes' GPU counts. Rows older than a day are
    thinned to every tenth minute and dropped after ``ROTA_LOAD_HISTORY_DAYS``.
    """

    minute = models.BigIntegerField(help_text="Minutes since the Unix epoch (UTC): when the sample was taken.")
    group = models.ForeignKey("cluster.NodeGroup", on_delete=models.CASCADE, related_name="+")
    nodes = models.PositiveIntegerField(default=0)  # every node of the group
    used = models.PositiveIntegerField(default=0)  # held by a job (running, starting or suspending)
    free = models.PositiveIntegerField(default=0)  # schedulable and idle
    gpus = models.PositiveIntegerField(default=0)  # GPUs of the group's nodes
    gpus_used = models.PositiveIntegerField(default=0)  # GPUs of the held nodes
    running = models.PositiveIntegerField(default=0)  # jobs holding nodes
    waiting = models.PositiveIntegerField(default=0)  # jobs in the queue (not held by a person)
    # priority level → [running jobs, waiting jobs]; running at the level they run at, waiting at
    # the level asked for (AUTO = -1), as on the overview's table. Keys are strings (JSON).
    levels = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["minute", "group"], name="load_sample_once_a_minute")]

    def __str__(self) -> str:
        return f"group {self.group_id} at minute {self.minute}: {self.used}/{self.nodes} used, {self.waiting} waiting"
