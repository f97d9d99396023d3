"""Reads of the admin pages. Each function runs a constant number of queries whatever the number
of users, nodes or jobs (the page tests pin the counts), reading the domain apps' models and
selectors only: the admin pages write nothing here.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, Mod
from django.utils import timezone

from apps.accounts.choices import AdminGroup
from apps.accounts.models import User
from apps.cluster.choices import NodeState
from apps.cluster.models import Environment, Node, NodeGroup
from apps.containers.choices import ON_NODE
from apps.containers.models import Container, ContainerGroupPolicy
from apps.core.models import AuditEntry
from apps.core.priorities import QUOTA_LEVELS, Priority
from apps.experiments.choices import ChainStatus, QueueStatus, WorkerStatus
from apps.experiments.models import Attempt, Chain, ChainTag, Rank
from apps.experiments.selectors import PLATFORM_SUSPENSIONS, NodeHolder, quota_usage, work_lost_gpu_hours
from apps.quotas.choices import QuotaKind
from apps.quotas.models import Quota
from apps.quotas.selectors import quota_resolve
from apps.scheduler.history import THIN_EVERY, minute_of
from apps.scheduler.models import LoadSample
from apps.scheduler.snapshot import Epoch
from apps.web.models import Notice

ACTIVE_STATUSES = [ChainStatus.STARTING, ChainStatus.RUNNING, ChainStatus.SUSPENDING, ChainStatus.STOPPING]
WAITING_STATUSES = [ChainStatus.WAITING, ChainStatus.SUSPENDED, ChainStatus.HELD]
UNFINISHED_STATUSES = ACTIVE_STATUSES + WAITING_STATUSES


def _count(queryset: QuerySet[Any], column: str = "pk") -> Coalesce:
    """A correlated ``COUNT`` (a subquery per row, so joins cannot multiply the rows)."""
    return Coalesce(
        Subquery(queryset.order_by().values(column).annotate(n=Count("*")).values("n")[:1]),
        Value(0),
        output_field=IntegerField(),
    )


@dataclass(frozen=True)
class UserFilters:
    q: str = ""
    role: str = ""
    group: str = ""
    active: str = ""  # "", "1", "0"
    ordering: str = "username"


USER_ORDERINGS = {
    "username": "username",
    "-nodes": "-nodes_in_use",
    "-running": "-running_count",
    "-waiting": "-waiting_count",
    "-joined": "-date_joined",
}


def user_rows(*, filters: UserFilters) -> QuerySet[User]:
    """Users with their team, groups and live counts: jobs running, jobs waiting, nodes held."""
    running = Chain.objects.filter(owner=OuterRef("pk"), status__in=ACTIVE_STATUSES).values("owner")
    waiting = Chain.objects.filter(owner=OuterRef("pk"), status__in=WAITING_STATUSES).values("owner")
    # A rank holds its node only while its attempt is the chain's latest and has started and not
    # finished (``lifecycle.attempt_start`` and ``_release_ranks``, committed with ``sync_chain``),
    # so its chain is active. Saying so lets the count start from the owner's few active chains
    # (index ``owner, status``) instead of every rank of every chain the user ever ran.
    nodes = Rank.objects.filter(
        holds_node=True, attempt__chain__owner=OuterRef("pk"), attempt__chain__status__in=ACTIVE_STATUSES
    ).values("attempt__chain__owner")
    qs = (
        User.objects.select_related("team")
        .prefetch_related("groups")
        .annotate(running_count=_count(running, "owner"), waiting_count=_count(waiting, "owner"))
        .annotate(nodes_in_use=_count(nodes, "attempt__chain__owner"))
    )
    if filters.q:
        qs = qs.filter(
            Q(username__icontains=filters.q) | Q(nickname__icontains=filters.q) | Q(email__icontains=filters.q)
        )
    if filters.role:
        qs = qs.filter(role=filters.role)
    if filters.group:
        qs = qs.filter(Q(groups__name=filters.group) | Q(team__name=filters.group)).distinct()
    if filters.active in ("0", "1"):
        qs = qs.filter(is_active=filters.active == "1")
    return qs.order_by(USER_ORDERINGS.get(filters.ordering, "username"), "pk")


@dataclass(frozen=True)
class UserTotals:
    users: int
    active: int
    running: int
    waiting: int
    nodes: int


def user_totals() -> UserTotals:
    """Counts across all users for the page header (three queries)."""
    users = User.objects.aggregate(total=Count("pk"), active=Count("pk", filter=Q(is_active=True)))
    jobs = Chain.objects.filter(status__in=UNFINISHED_STATUSES).aggregate(
        running=Count("pk", filter=Q(status__in=ACTIVE_STATUSES)),
        waiting=Count("pk", filter=Q(status__in=WAITING_STATUSES)),
    )
    nodes = Rank.objects.filter(holds_node=True).count()
    return UserTotals(
        users=users["total"], active=users["active"], running=jobs["running"], waiting=jobs["waiting"], nodes=nodes
    )


def group_names() -> list[str]:
    """Every group (teams, quota groups, admin groups), by name."""
    return list(Group.objects.order_by("name").values_list("name", flat=True))


def admin_group_names() -> set[str]:
    return set(AdminGroup.values)


def user_get(*, pk: int) -> User | None:
    return User.objects.select_related("team").prefetch_related("groups").filter(pk=pk).first()


def user_unfinished_chains(*, user: User) -> QuerySet[Chain]:
    return Chain.objects.filter(owner=user, finished=False).order_by("-id")


def user_job_counts(*, user: User) -> dict[str, int]:
    row = Chain.objects.filter(owner=user).aggregate(
        running=Count("pk", filter=Q(status__in=ACTIVE_STATUSES)),
        waiting=Count("pk", filter=Q(status__in=WAITING_STATUSES)),
        total=Count("pk"),
    )
    nodes = Rank.objects.filter(holds_node=True, attempt__chain__owner=user).count()
    return {**row, "nodes": nodes}


# --- quotas -------------------------------------------------------------------------------------


@dataclass
class QuotaCell:
    """One editable quota value of a subject: its own row's value (None: no row of its own),
    and for a user what applies (own or inherited from groups) and what they hold now."""

    key: str  # the form field: "<kind>:<node group id>[:<level>]" or "environment:<id>"
    own: int | None
    effective: int | None = None
    used: int | None = None
    label: str = ""

    @property
    def over(self) -> bool:
        return self.used is not None and self.effective is not None and self.used > self.effective


@dataclass
class QuotaGridRow:
    node_group: NodeGroup
    cells: list[QuotaCell]  # one per level of ``QUOTA_LEVELS``
    containers: list[QuotaCell]  # jupyter containers, CPUs, memory (GiB)


@dataclass
class QuotaGrid:
    subject: User | Group
    is_user: bool
    levels: list[tuple[int, str]]
    rows: list[QuotaGridRow]
    environments: list[tuple[Environment, QuotaCell]]


CONTAINER_KINDS = (QuotaKind.JUPYTER_CONTAINERS, QuotaKind.JUPYTER_CPU, QuotaKind.JUPYTER_MEMORY_GIB)


def quota_cell_key(kind: str, node_group_id: int | None = None, level: int | None = None) -> str:
    parts = [kind, str(node_group_id)] + ([str(level)] if level is not None else [])
    return ":".join(parts)


def quota_grid(*, subject: User | Group) -> QuotaGrid:
    """Node quota per node group × priority level, container quotas per node group and the
    environments, for one user or one group (constant number of queries)."""
    is_user = isinstance(subject, User)
    own_rows = Quota.objects.filter(**({"user": subject} if is_user else {"group": subject})).values_list(
        "kind", "node_group_id", "priority", "environment_id", "value"
    )
    own: dict[str, int] = {}
    for kind, node_group_id, level, environment_id, value in own_rows:
        if kind == QuotaKind.ENVIRONMENT:
            own[quota_cell_key(kind, environment_id)] = value
        elif kind in (QuotaKind.NODE, QuotaKind.NODE_LIMIT):
            own[quota_cell_key(kind, node_group_id, level)] = value
        else:
            own[quota_cell_key(kind, node_group_id)] = value
    resolved = quota_resolve(user=subject) if isinstance(subject, User) else None
    used = quota_usage(user=subject) if isinstance(subject, User) else {}
    levels = [(int(p), p.label) for p in QUOTA_LEVELS]
    rows = []
    for node_group in NodeGroup.objects.order_by("name"):
        cells = []
        for level, _label in levels:
            key = quota_cell_key(QuotaKind.NODE, node_group.pk, level)
            cells.append(
                QuotaCell(
                    key=key,
                    own=own.get(key),
                    effective=resolved.nodes(node_group.name, level) if resolved else None,
                    used=used.get((node_group.name, level), 0) if resolved else None,
                    label=f"{node_group.name} {_label}",
                )
            )
        containers = []
        for kind in CONTAINER_KINDS:
            key = quota_cell_key(kind, node_group.pk)
            effective = None
            if resolved is not None:
                jq = resolved.jupyter.get(node_group.name)
                effective = (
                    0
                    if jq is None
                    else {
                        QuotaKind.JUPYTER_CONTAINERS: jq.containers,
                        QuotaKind.JUPYTER_CPU: jq.cpu,
                        QuotaKind.JUPYTER_MEMORY_GIB: jq.memory_gib,
                    }[kind]
                )
            label = f"{node_group.name} {QuotaKind(kind).label}"
            containers.append(QuotaCell(key=key, own=own.get(key), effective=effective, label=label))
        rows.append(QuotaGridRow(node_group=node_group, cells=cells, containers=containers))
    environments = []
    for environment in Environment.objects.order_by("name"):
        key = quota_cell_key(QuotaKind.ENVIRONMENT, environment.pk)
        allowed = resolved.may_use_environment(environment.name) if resolved else None
        effective = int(bool(allowed)) if resolved else None
        environments.append((environment, QuotaCell(key=key, own=own.get(key), effective=effective)))
    return QuotaGrid(subject=subject, is_user=is_user, levels=levels, rows=rows, environments=environments)


def quota_subjects() -> dict[str, list[str]]:
    """Groups that hold quota rows, and users that have rows of their own (for quick links)."""
    groups = sorted(set(Quota.objects.filter(group__isnull=False).values_list("group__name", flat=True)))
    users = sorted(set(Quota.objects.filter(user__isnull=False).values_list("user__username", flat=True)))
    return {"groups": groups, "users": users}


# --- nodes --------------------------------------------------------------------------------------


@dataclass
class NodeRow:
    node: Node
    holder: NodeHolder | None

    @property
    def display_state(self) -> str:
        """What the node is doing: busy, free, draining, drained (draining and idle), disabled …"""
        state = self.node.state
        if state == NodeState.DRAINING:
            return "draining" if self.holder else "drained"
        if state == NodeState.READY:
            return "busy" if self.holder else "free"
        return str(state)


@dataclass
class NodeGroupBranch:
    group: NodeGroup
    nodes: list[NodeRow]
    counts: dict[str, int]
    total: int
    gpus: int


NODE_DISPLAY_STATES = ("busy", "free", "draining", "drained", "cordoned", "not_ready", "disabled")


def all_node_holders() -> dict[int, NodeHolder]:
    """Node id → the job holding it, for every busy node (one query). Every admin group sees who
    runs what on the nodes, as HAI's monitor did; the portal's ``node_holders`` hides other
    people's jobs from those who may not see them."""
    rows = Rank.objects.filter(holds_node=True).values_list(
        "node_id", "attempt__chain_id", "attempt__index", "attempt__chain__name", "attempt__chain__owner__username"
    )
    return {
        node_id: NodeHolder(chain_id, f"{chain_id}.{index + 1}", name, owner)
        for node_id, chain_id, index, name, owner in rows
    }


def node_tree(*, state: str = "", q: str = "") -> list[NodeGroupBranch]:
    """Node groups with every node (filtered by display state and name), each with the job holding
    it; counts are over the whole group, whatever the filter. Three queries."""
    holders = all_node_holders()
    branches: dict[int, NodeGroupBranch] = {}
    for group in NodeGroup.objects.order_by("name"):
        branches[group.pk] = NodeGroupBranch(group, [], dict.fromkeys(NODE_DISPLAY_STATES, 0), 0, 0)
    for node in Node.objects.order_by("name"):
        row = NodeRow(node=node, holder=holders.get(node.pk))
        branch = branches[node.group_id]
        shown = row.display_state
        branch.counts[shown] = branch.counts.get(shown, 0) + 1
        branch.total += 1
        branch.gpus += node.gpu_count
        if state and shown != state:
            continue
        if q and q.lower() not in node.name.lower():
            continue
        branch.nodes.append(row)
    return list(branches.values())


def node_get(*, pk: int) -> Node | None:
    return Node.objects.select_related("group").filter(pk=pk).first()


def node_recent_ranks(*, node: Node, limit: int = 20) -> list[Rank]:
    """The latest ranks that ran on ``node`` (newest attempt first), with job and owner."""
    return list(
        Rank.objects.filter(node=node)
        .select_related("attempt", "attempt__chain", "attempt__chain__owner")
        .order_by("-attempt_id", "rank")[:limit]
    )


def node_events(*, node: Node, limit: int = 20) -> list[AuditEntry]:
    """Admin changes of the node (registered, disabled, drained, enabled …), newest first."""
    return list(AuditEntry.objects.filter(target_type="cluster.node", target_id=str(node.pk))[:limit])


def node_holder(*, node: Node) -> NodeHolder | None:
    return all_node_holders().get(node.pk)


# --- jobs ---------------------------------------------------------------------------------------


def jobs_all() -> QuerySet[Chain]:
    """Every job (chain) with its latest attempt, owner, node group and tags, newest first; the
    experiments' FilterSet narrows it (status, name, tags, group, priority, owner, dates)."""
    return (
        Chain.objects.select_related("latest_attempt", "owner", "node_group")
        .prefetch_related(Prefetch("tags", queryset=ChainTag.objects.order_by("name")))
        .order_by("-id")
    )


@dataclass(frozen=True)
class ContainerPolicyRow:
    group: NodeGroup
    policy: ContainerGroupPolicy  # unsaved defaults when the group has no row
    saved: bool
    running: int  # containers on its nodes (starting, running, stopping)
    nodes: int


def container_policies() -> list[ContainerPolicyRow]:
    """Every node group with how it hosts containers and how many run there (three queries)."""
    policies = {p.node_group_id: p for p in ContainerGroupPolicy.objects.all()}
    running = dict(
        Container.objects.filter(status__in=ON_NODE)
        .values("node_group_id")
        .annotate(n=Count("id"))
        .values_list("node_group_id", "n")
    )
    groups = NodeGroup.objects.annotate(node_count=Count("nodes")).order_by("name")
    return [
        ContainerPolicyRow(
            group=g,
            policy=policies.get(g.pk) or ContainerGroupPolicy(node_group=g),
            saved=g.pk in policies,
            running=running.get(g.pk, 0),
            nodes=g.node_count,  # type: ignore[attr-defined]
        )
        for g in groups
    ]


# --- scheduler overview ---------------------------------------------------------------------------


@dataclass
class LevelRow:
    """One priority level of a node group: jobs and nodes running at it, jobs and nodes waiting."""

    level: int
    running_jobs: int = 0
    running_nodes: int = 0
    waiting_jobs: int = 0
    waiting_nodes: int = 0


@dataclass
class GroupLoad:
    """A node group as the scheduler sees it: nodes used and free, then each priority level."""

    name: str
    nodes: int = 0
    used: int = 0  # held by a job (starting, running, suspending, stopping)
    free: int = 0  # ready and held by nobody
    unavailable: int = 0  # draining, cordoned, not ready or disabled, and idle
    held_jobs: int = 0  # suspended by a person: out of the queue until resumed
    levels: list[LevelRow] | None = None

    @property
    def running_jobs(self) -> int:
        return sum(r.running_jobs for r in self.levels or ())

    @property
    def waiting_jobs(self) -> int:
        return sum(r.waiting_jobs for r in self.levels or ())


def scheduler_loads() -> list[GroupLoad]:
    """Per node group and priority level: running and waiting jobs and their nodes; per group the
    nodes used, free and unavailable (four queries). Running jobs count at the level they run at
    (``effective_priority``, aged ABOVE_NORMAL jobs at NORMAL); waiting ones at the level asked for
    (AUTO until the scheduler picks one)."""
    groups = {
        pk: GroupLoad(name=name, levels=[]) for pk, name in NodeGroup.objects.order_by("name").values_list("pk", "name")
    }
    held_node = Rank.objects.filter(node=OuterRef("pk"), holds_node=True)
    node_counts = (
        Node.objects.annotate(held=Exists(held_node))
        .values("group_id")
        .annotate(
            total=Count("pk"),
            used=Count("pk", filter=Q(held=True)),
            free=Count("pk", filter=Q(held=False, state=NodeState.READY)),
        )
        .order_by()
    )
    for row in node_counts:
        load = groups[row["group_id"]]
        load.nodes, load.used, load.free = row["total"], row["used"], row["free"]
        load.unavailable = row["total"] - row["used"] - row["free"]
    levels: dict[tuple[int, int], LevelRow] = {}

    def level_row(group_id: int, level: int | None) -> LevelRow:
        key = (group_id, -2 if level is None else level)
        if key not in levels:
            levels[key] = LevelRow(level=key[1])
        return levels[key]

    running = (
        Attempt.objects.filter(queue_status=QueueStatus.SCHEDULED)
        .values("chain__node_group_id", "effective_priority")
        .annotate(jobs=Count("pk"), nodes=Sum("chain__node_count"))
        .order_by()
    )
    for row in running:
        lr = level_row(row["chain__node_group_id"], row["effective_priority"])
        lr.running_jobs, lr.running_nodes = row["jobs"], row["nodes"] or 0
    waiting = (
        Attempt.objects.filter(queue_status=QueueStatus.QUEUED)
        .values("chain__node_group_id", "priority", "chain__held")
        .annotate(jobs=Count("pk"), nodes=Sum("chain__node_count"))
        .order_by()
    )
    for row in waiting:
        if row["chain__held"]:
            groups[row["chain__node_group_id"]].held_jobs += row["jobs"]
            continue
        lr = level_row(row["chain__node_group_id"], row["priority"])
        lr.waiting_jobs += row["jobs"]
        lr.waiting_nodes += row["nodes"] or 0
    for (group_id, _level), lr in sorted(levels.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        groups[group_id].levels.append(lr)  # type: ignore[union-attr]
    return list(groups.values())


def scheduler_queue(*, group: str = "") -> QuerySet[Attempt]:
    """The waiting queue in the scheduler's order: per node group by the position its last pass
    gave each attempt (not yet looked at: last), with the job, owner and the stored explanation.
    Jobs a person suspended are not in the queue."""
    qs = Attempt.objects.filter(queue_status=QueueStatus.QUEUED, chain__held=False).select_related(
        "chain", "chain__owner", "chain__node_group"
    )
    if group:
        qs = qs.filter(chain__node_group__name=group)
    return qs.order_by("chain__node_group__name", F("queue_position").asc(nulls_last=True), "pk")


@dataclass(frozen=True)
class Preemption:
    """A job the platform suspended, who it was suspended for, and the work it lost."""

    attempt: Attempt
    beneficiary: Attempt | None
    lost_gpu_hours: float | None  # None while the victim is still suspending


def recent_preemptions(*, since: datetime, limit: int = 20) -> list[Preemption]:
    """The latest suspensions the platform decided (preemption, time-share, quota, node trouble),
    newest first, with the beneficiary and the GPU-hours of work lost (at most three queries)."""
    victims = list(
        Attempt.objects.filter(suspend_reason__in=PLATFORM_SUSPENSIONS, suspend_requested_at__gte=since)
        .select_related("chain", "chain__owner", "chain__node_group")
        .order_by("-suspend_requested_at", "-pk")[:limit]
    )
    # The GPUs each held, for these few only (a SUM over the join above would group every column).
    gpus = dict(
        Rank.objects.filter(attempt__in=[a.pk for a in victims])
        .order_by()
        .values("attempt")
        .annotate(n=Sum("node__gpu_count"))
        .values_list("attempt", "n")
    )
    wanted = {a.suspend_for for a in victims if a.suspend_for}
    beneficiaries = (
        {a.pk: a for a in Attempt.objects.filter(pk__in=wanted).select_related("chain", "chain__owner")}
        if wanted
        else {}
    )
    return [
        Preemption(
            attempt=a,
            beneficiary=beneficiaries.get(a.suspend_for) if a.suspend_for else None,
            lost_gpu_hours=(
                work_lost_gpu_hours(
                    gpus=gpus.get(a.pk),
                    started_at=a.started_at,
                    last_checkpoint_at=a.last_checkpoint_at,
                    finished_at=a.finished_at,
                )
                if a.finished_at is not None
                else None
            ),
        )
        for a in victims
    ]


# The charts' ranges: minutes shown and minutes between two points (the 7-day chart reads every
# tenth minute, which is what older samples are thinned to).
HISTORY_RANGES: dict[str, tuple[int, int]] = {"24h": (24 * 60, 1), "7d": (7 * 24 * 60, THIN_EVERY)}
HISTORY_SERIES = ("nodes", "used", "free", "gpus", "gpus_used", "running", "waiting")


def _level_name(level: str) -> str:
    try:
        return Priority(int(level)).name
    except ValueError:
        return level


def load_history(*, span: str, now: datetime) -> dict[str, Any]:
    """The load samples of the last ``span`` (a key of ``HISTORY_RANGES``) as chart columns (one query).

    ``t`` holds every point's time (epoch seconds, one per minute or per tenth minute, the newest
    the current minute); each node group with a sample in the range has one list per series of
    ``HISTORY_SERIES`` and ``waiting_by_level`` (priority name → list), aligned with ``t``, with
    ``None`` where no pass sampled (the worker was down): the chart shows a gap, not a line.
    """
    minutes, step = HISTORY_RANGES[span]
    last = minute_of(now) // step * step
    slots = [last - step * i for i in range(minutes // step - 1, -1, -1)]
    index = {minute: i for i, minute in enumerate(slots)}
    rows = LoadSample.objects.filter(minute__gte=slots[0], minute__lte=last)
    if step > 1:
        rows = rows.alias(rest=Mod("minute", step)).filter(rest=0)
    groups: dict[str, dict[str, Any]] = {}
    columns = ("minute", "group__name", "levels", *HISTORY_SERIES)
    for minute, name, levels, *values in rows.order_by().values_list(*columns):
        group = groups.get(name)
        if group is None:
            group = groups[name] = {"name": name, **{key: [None] * len(slots) for key in HISTORY_SERIES}}
            group["waiting_by_level"] = {}
        i = index[minute]
        for key, value in zip(HISTORY_SERIES, values, strict=True):
            group[key][i] = value
        for level, (_running, waiting) in levels.items():
            if waiting:
                by_level = group["waiting_by_level"].setdefault(_level_name(level), [None] * len(slots))
                by_level[i] = waiting
    for group in groups.values():  # levels highest first, as the overview's table lists them
        order = sorted(group["waiting_by_level"], key=lambda n: -Priority[n].value if n in Priority.names else 0)
        sampled = [i for i, nodes in enumerate(group["nodes"]) if nodes is not None]
        by_level = {}
        for name in order:
            column = group["waiting_by_level"][name]
            for i in sampled:  # sampled, but nothing waited at this level then
                if column[i] is None:
                    column[i] = 0
            by_level[name] = column
        group["waiting_by_level"] = by_level
    return {
        "range": span,
        "step": step * 60,
        "t": [minute * 60 for minute in slots],
        "groups": [groups[name] for name in sorted(groups)],
    }


# --- usage ----------------------------------------------------------------------------------------

USAGE_BY = ("user", "team", "group")  # what a row is: a user, a team, a node group
USAGE_STEPS = ("day", "week")
NO_TEAM = "—"


@dataclass(frozen=True)
class UsageRow:
    """One user, team or node group: GPU-hours per bucket, in all, and lost to preemption. The
    figures are formatted once here (one decimal) so the page and the CSV show the same text."""

    rank: int
    name: str
    total: str
    lost: str
    cells: list[str]


@dataclass(frozen=True)
class UsageReport:
    start: datetime  # first instant of the period (local midnight)
    end: datetime  # first instant after it
    by: str
    step: str
    buckets: list[datetime]  # the start of each day or week
    rows: list[UsageRow]  # highest total first
    total: str
    lost: str
    bucket_totals: list[str]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f}"


def usage_buckets(*, start: datetime, end: datetime, step: str) -> list[datetime]:
    """Bucket starts from ``start`` (a local midnight) to before ``end``: every day, or every
    Monday (the first bucket starts at ``start`` itself, so a week may be cut at the edges)."""
    tz = start.tzinfo
    buckets = [start]
    day = start.date()
    while True:
        day += timedelta(days=1)
        if step == "week":
            while day.weekday() != 0:
                day += timedelta(days=1)
        moment = datetime.combine(day, time.min, tzinfo=tz)
        if moment >= end:
            return buckets
        buckets.append(moment)


RANK_CHUNK = 5000  # attempt ids per query of their ranks (SQLite caps a statement's parameters)


def attempt_gpus(attempt_ids: list[int]) -> dict[int, int]:
    """GPUs each attempt held: the sum over its ranks' nodes (two queries; one more per further
    ``RANK_CHUNK`` attempts). Read by the rank index and a dictionary of the nodes, because a
    per-attempt subquery summing over a join to the nodes cost PostgreSQL a scan of every node per
    attempt (docs/PERFORMANCE.md)."""
    if not attempt_ids:
        return {}
    node_gpus = dict(Node.objects.values_list("pk", "gpu_count"))
    gpus: dict[int, int] = defaultdict(int)
    for i in range(0, len(attempt_ids), RANK_CHUNK):
        ranks = Rank.objects.filter(attempt_id__in=attempt_ids[i : i + RANK_CHUNK]).order_by()
        for attempt_id, node_id in ranks.values_list("attempt_id", "node_id"):
            gpus[attempt_id] += node_gpus.get(node_id, 0)
    return gpus


def usage_report(*, start: datetime, end: datetime, by: str, step: str, now: datetime | None = None) -> UsageReport:
    """GPU-hours used in ``[start, end)`` per user, team or node group, per day or week, ranked,
    with the GPU-hours lost to preemption (work redone after a platform suspension ended in the
    period; ``work_lost_gpu_hours``). A job uses its nodes' GPUs from being scheduled to finishing
    (now, if it still runs). Four queries: the attempts that ran in the period, those the platform
    suspended in it, then the GPUs of both (``attempt_gpus``)."""
    now = now or timezone.now()
    subject = {
        "user": "chain__owner__username",
        "team": "chain__owner__team__name",
        "group": "chain__node_group__name",
    }[by]
    # Times as epoch seconds computed by the database: loading 16,000 timestamps as datetimes
    # cost more than the queries did (psycopg parses each in Python).
    used = list(
        Attempt.objects.filter(scheduled_at__lt=end)
        .filter(Q(finished_at__isnull=True, queue_status=QueueStatus.SCHEDULED) | Q(finished_at__gt=start))
        .order_by()
        .values_list("pk", subject, Epoch("scheduled_at"), Epoch("finished_at"))
    )
    suspended = list(
        Attempt.objects.filter(
            worker_status=WorkerStatus.SUSPENDED,
            suspend_reason__in=PLATFORM_SUSPENSIONS,
            finished_at__gte=start,
            finished_at__lt=end,
        )
        .order_by()
        .values_list("pk", subject, Epoch("started_at"), Epoch("last_checkpoint_at"), Epoch("finished_at"))
    )
    gpus = attempt_gpus(sorted({row[0] for row in used} | {row[0] for row in suspended}))
    buckets = usage_buckets(start=start, end=end, step=step)
    bounds = [b.timestamp() for b in (*buckets, end)]
    start_at, end_at, now_at = start.timestamp(), end.timestamp(), now.timestamp()
    seconds: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(buckets))
    for pk, name, began, finished in used:
        gpu_count = gpus.get(pk)
        if not gpu_count:
            continue
        lo, hi = max(began, start_at), min(now_at if finished is None else finished, end_at)
        if hi <= lo:
            continue
        row = seconds[name or NO_TEAM]
        i = bisect.bisect_right(bounds, lo) - 1
        while i < len(buckets) and bounds[i] < hi:
            row[i] += gpu_count * (min(hi, bounds[i + 1]) - max(lo, bounds[i]))
            i += 1
    lost: dict[str, float] = defaultdict(float)
    for pk, name, began, checkpoint, finished in suspended:
        # ``work_lost_gpu_hours`` on epoch seconds: the GPUs × the time since the last checkpoint (or start)
        since = max((t for t in (began, checkpoint) if t is not None), default=None)
        gpu_count = gpus.get(pk)
        if since is not None and finished is not None and gpu_count:
            lost[name or NO_TEAM] += gpu_count * max(0.0, finished - since)
    # Ranked by the total shown (tenths of an hour), then by name: float noise never reorders a tie.
    names = sorted(set(seconds) | set(lost), key=lambda n: (-round(sum(seconds.get(n, ())) / 3600, 1), n))
    rows = [
        UsageRow(
            rank=i + 1,
            name=name,
            total=_hours(sum(seconds.get(name, ()))),
            lost=_hours(lost.get(name, 0.0)),
            cells=[_hours(s) for s in seconds.get(name, [0.0] * len(buckets))],
        )
        for i, name in enumerate(names)
    ]
    return UsageReport(
        start=start,
        end=end,
        by=by,
        step=step,
        buckets=buckets,
        rows=rows,
        total=_hours(sum(sum(v) for v in seconds.values())),
        lost=_hours(sum(lost.values())),
        bucket_totals=[_hours(sum(v[i] for v in seconds.values())) for i in range(len(buckets))],
    )


def usage_csv_rows(report: UsageReport) -> list[list[str]]:
    """The report as CSV rows: the page's table, cell for cell (header, one row each, the total)."""
    head = ["rank", report.by, "gpu_hours", "gpu_hours_lost_to_preemption"]
    head += [b.date().isoformat() for b in report.buckets]
    body = [[str(r.rank), r.name, r.total, r.lost, *r.cells] for r in report.rows]
    return [head, *body, ["", "total", report.total, report.lost, *report.bucket_totals]]


# --- notices and the audit log ---------------------------------------------------------------------


def notices_all() -> QuerySet[Notice]:
    """Every notice, the latest to start first, with its group, user and author."""
    return Notice.objects.select_related("group", "user", "created_by").order_by("-starts_at", "-id")


def notice_get(*, pk: int) -> Notice | None:
    return Notice.objects.select_related("group", "user").filter(pk=pk).first()


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""  # user name, exact
    action: str = ""  # exact, or a prefix ending in "." ("quota.")
    target_type: str = ""  # "cluster.node", "experiments.chain" …
    target: str = ""  # the object's id, or part of its name
    start: datetime | None = None
    end: datetime | None = None  # first instant after the period


def audit_entries(*, filters: AuditFilters) -> QuerySet[AuditEntry]:
    """Audit entries matching ``filters``, newest first."""
    qs = AuditEntry.objects.all()
    if filters.actor:
        qs = qs.filter(actor_name=filters.actor)
    if filters.action:
        qs = (
            qs.filter(action__startswith=filters.action)
            if filters.action.endswith(".")
            else qs.filter(action=filters.action)
        )
    if filters.target_type:
        qs = qs.filter(target_type=filters.target_type)
    if filters.target:
        qs = qs.filter(Q(target_id=filters.target) | Q(target_repr__icontains=filters.target))
    if filters.start is not None:
        qs = qs.filter(created_at__gte=filters.start)
    if filters.end is not None:
        qs = qs.filter(created_at__lt=filters.end)
    return qs.order_by("-created_at", "-id")


def audit_target_types() -> list[str]:
    """The kinds of object the log names (for the filter's choices)."""
    return sorted(AuditEntry.objects.order_by().values_list("target_type", flat=True).distinct())


def audit_csv_rows(entries: Iterable[AuditEntry]) -> Iterator[list[str]]:
    yield ["time", "actor", "action", "object_type", "object_id", "object", "before", "after", "note"]
    for e in entries:
        yield [
            e.created_at.isoformat(),
            e.actor_name,
            e.action,
            e.target_type,
            e.target_id,
            e.target_repr,
            "" if e.before is None else json.dumps(e.before, sort_keys=True, ensure_ascii=False),
            "" if e.after is None else json.dumps(e.after, sort_keys=True, ensure_ascii=False),
            e.note,
        ]
