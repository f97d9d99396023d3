"""The cluster's load over time: one ``LoadSample`` row per node group per minute, for the charts.

The scheduling pass already holds what an admin wants to chart — which nodes are held, what runs at
which level, what waits — in its snapshot and plan, so after it commits it turns them into one row
per node group with a single bulk insert (plus one small read of the nodes' GPU counts). It does so
at most once a minute: the process remembers the last minute it sampled, and the unique
``(minute, group)`` constraint with ``ignore_conflicts`` keeps two processes' passes in the same
minute from writing twice. Best effort, like the pass summary: a failure is logged, never raised,
because the pass has already committed its decisions.

Retention: rows older than a day are thinned to every tenth minute (what the 7-day chart reads) and
rows older than ``ROTA_LOAD_HISTORY_DAYS`` are deleted, at most every ten minutes, by the same step.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models.functions import Mod

from apps.cluster.models import Node
from apps.scheduler import policy
from apps.scheduler.models import LoadSample

logger = logging.getLogger(__name__)

FULL_RESOLUTION_MINUTES = 24 * 60  # the last day keeps every minute (the 24-hour chart)
THIN_EVERY = 10  # older rows keep every tenth minute (the 7-day chart)
PRUNE_EVERY = 10  # minutes between two prunes in one process


class _Memo:
    """What this process last did, so most passes skip sampling without touching the database."""

    sampled: int | None = None  # the minute last sampled (or tried)
    pruned: int | None = None  # the minute of the last prune


MEMO = _Memo()


def minute_of(when: datetime) -> int:
    """Minutes since the Unix epoch (UTC) of an aware datetime."""
    return int(when.timestamp() // 60)


def retention_days() -> int:
    return int(getattr(settings, "ROTA_LOAD_HISTORY_DAYS", 30))


def load_samples(
    snapshot: policy.Snapshot, started: dict[int, tuple[tuple[str, ...], int]], minute: int
) -> list[LoadSample]:
    """The rows of one minute (unsaved) from a pass's snapshot and the starts it committed.

    ``started`` maps each attempt the pass started to (its nodes, the level it runs at). Nodes held
    are the running attempts' (suspending ones still hold theirs) plus the started ones'; jobs
    waiting are the snapshot's queue less what started.
    """
    nodes = {name: (group, gpus) for name, group, gpus in Node.objects.values_list("name", "group_id", "gpu_count")}
    rows: dict[int, LoadSample] = {}
    levels: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))

    def row(group_id: int) -> LoadSample:
        if group_id not in rows:
            rows[group_id] = LoadSample(minute=minute, group_id=group_id)
        return rows[group_id]

    held: set[str] = set()
    group_ids: dict[str, int] = {}
    for node in snapshot.nodes:
        if node.name not in nodes:  # deleted since the snapshot was read
            continue
        group_id, gpus = nodes[node.name]
        group_ids[node.group] = group_id
        sample = row(group_id)
        sample.nodes += 1
        sample.gpus += gpus

    def hold(names: tuple[str, ...], group: str, level: int) -> None:
        group_id = group_ids.get(group)
        if group_id is None:
            return
        sample = row(group_id)
        sample.running += 1
        levels[group_id][level][0] += 1
        for name in names:
            if name in nodes and name not in held:
                held.add(name)
                sample.used += 1
                sample.gpus_used += nodes[name][1]

    for running in snapshot.running:
        hold(running.nodes, running.group, running.priority)
    for waiting in snapshot.waiting:
        if waiting.attempt_id in started:
            start_nodes, level = started[waiting.attempt_id]
            hold(start_nodes, waiting.group, level)
            continue
        waiting_in = group_ids.get(waiting.group)
        if waiting_in is not None:
            row(waiting_in).waiting += 1
            levels[waiting_in][waiting.priority][1] += 1
    for node in snapshot.nodes:
        if node.schedulable and node.name not in held and node.group in group_ids:
            row(group_ids[node.group]).free += 1
    for group_id, sample in rows.items():
        sample.levels = {str(level): counts for level, counts in sorted(levels[group_id].items(), reverse=True)}
    return [rows[group_id] for group_id in sorted(rows)]


def load_sample_record(
    snapshot: policy.Snapshot, started: dict[int, tuple[tuple[str, ...], int]], now: datetime
) -> int:
    """After a committed pass: write this minute's rows unless this process (or another) already
    did, and prune now and then. Returns the number of rows offered (one per node group; 0 when
    this process already sampled this minute). Never raises."""
    minute = minute_of(now)
    if MEMO.sampled is not None and minute <= MEMO.sampled:
        return 0
    MEMO.sampled = minute
    try:
        rows = load_samples(snapshot, started, minute)
        with transaction.atomic():  # a savepoint when a caller's transaction is open (tests)
            LoadSample.objects.bulk_create(rows, ignore_conflicts=True)
        if MEMO.pruned is None or minute - MEMO.pruned >= PRUNE_EVERY:
            MEMO.pruned = minute
            load_history_prune(minute=minute)
    except DatabaseError:
        logger.exception("could not record the load sample of minute %d", minute)
        return 0
    return len(rows)


@transaction.atomic
def load_history_prune(*, minute: int) -> int:
    """Delete samples older than the retention and thin those older than a day to every tenth
    minute. Returns the rows deleted."""
    expired, _ = LoadSample.objects.filter(minute__lt=minute - retention_days() * 24 * 60).delete()
    thinned, _ = (
        LoadSample.objects.filter(minute__lt=minute - FULL_RESOLUTION_MINUTES)
        .alias(rest=Mod("minute", THIN_EVERY))
        .exclude(rest=0)
        .delete()
    )
    return expired + thinned
