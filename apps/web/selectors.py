"""Reads the portal's pages need on top of the domain selectors: notices, preferences, the
dashboard's panels and the experiments list page. Every function runs a constant number of
queries, whatever the number of jobs or nodes (the page tests guard it)."""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from apps.accounts.models import User
from apps.cluster.choices import MountKind, NodeState
from apps.cluster.models import Node, NodeGroup
from apps.cluster.selectors import mounts_for
from apps.core.priorities import QUOTA_LEVELS, Priority
from apps.experiments.choices import ChainStatus, QueueStatus
from apps.experiments.models import Attempt, Chain, ChainTag, Rank
from apps.experiments.selectors import QuotaLevel, attempt_runtime_seconds, chain_list, quota_overview
from apps.quotas.selectors import ResolvedQuota, environments_for, quota_resolve
from apps.web.choices import SEVERITY_ORDER, NoticeAudience
from apps.web.models import Notice, UserPreference

ACTIVE_STATUSES = [ChainStatus.STARTING, ChainStatus.RUNNING, ChainStatus.SUSPENDING, ChainStatus.STOPPING]
WAITING_STATUSES = [ChainStatus.WAITING, ChainStatus.SUSPENDED, ChainStatus.HELD]


# --- notices and preferences --------------------------------------------------------------------


def notices_for(*, user: User, now: datetime | None = None) -> list[Notice]:
    """Notices shown to ``user`` now: for everyone, for one of their groups (or team), or for them.

    Most severe first, then newest."""
    now = now or timezone.now()
    audience = (
        Q(audience=NoticeAudience.ALL)
        | Q(audience=NoticeAudience.USER, user=user)
        | Q(audience=NoticeAudience.GROUP, group__name__in=sorted(user.group_names()))
    )
    notices = list(
        Notice.objects.filter(audience, starts_at__lte=now)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("-starts_at", "-id")[:20]
    )
    rank = {str(severity): i for i, severity in enumerate(SEVERITY_ORDER)}
    return sorted(notices, key=lambda n: rank.get(n.severity, len(rank)))


def preference_of(*, user: User) -> UserPreference:
    """The user's preferences (an unsaved default when they never chose)."""
    return UserPreference.objects.filter(user=user).first() or UserPreference(user=user)


# --- experiments list ---------------------------------------------------------------------------


def chain_rows(*, user: User, own: bool = False) -> QuerySet[Chain]:
    """``chain_list`` plus each chain's attempt times (for the summed duration): one more query.

    ``own``: the user's own jobs only (the list's default scope)."""
    return chain_list(user=user, own=own).prefetch_related(
        Prefetch(
            "attempts",
            queryset=Attempt.objects.only("id", "chain_id", "index", "started_at", "finished_at").order_by("index"),
            to_attr="attempt_times",
        )
    )


def chain_runtime_seconds(chain: Chain, now: datetime | None = None) -> float:
    """Time the chain has run, summed over its attempts (waiting time excluded)."""
    attempts = getattr(chain, "attempt_times", None)
    if attempts is None:
        attempts = list(chain.attempts.all())
    now = now or timezone.now()
    return sum(attempt_runtime_seconds(a, now) for a in attempts)


#: tag suggestions come from the user's newest jobs: a bounded read however long their history
TAGS_FROM_RECENT_JOBS = 500


def tags_of(*, user: User, limit: int = 50) -> list[str]:
    """The tags on the user's own newest ``TAGS_FROM_RECENT_JOBS`` jobs, most used first
    (suggestions for filters and tagging). Reads those jobs' keys through the ``(owner, -id)``
    index, not every tag of a history of thousands of jobs (issue 19: 10–16 ms per list page)."""
    recent = Chain.objects.filter(owner_id=user.pk).order_by("-id").values("id")[:TAGS_FROM_RECENT_JOBS]
    rows = (
        ChainTag.objects.filter(chain_id__in=recent)
        .values("name")
        .annotate(n=Count("id"))
        .order_by("-n", "name")[:limit]
    )
    return [row["name"] for row in rows]


# --- submit form ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitChoices:
    """What the submit form offers a user: node groups they have quota in (every group for
    admins), environments they may use (their default first), and their quota per group and level
    (for the form's hints)."""

    groups: list[str]
    environments: list[str]
    hints: dict[str, Any]


def usable_node_groups(*, user: User, quota: ResolvedQuota | None = None) -> list[str]:
    """The node groups ``user`` may put a job in, by name: those where they have node quota at some
    level, every group for platform admins. The submit form offers them, and so does the job page's
    move to another node group. ``quota``: the user's, when the caller has resolved it already."""
    if quota is None:
        quota = quota_resolve(user=user)
    with_quota = {g for (g, _p), v in quota.node.items() if v > 0}
    every_group = list(NodeGroup.objects.order_by("name").values_list("name", flat=True))
    return every_group if user.is_platform_admin else [g for g in every_group if g in with_quota]


def submit_choices(*, user: User) -> SubmitChoices:
    quota = quota_resolve(user=user)
    groups = usable_node_groups(user=user, quota=quota)
    per_group: dict[str, dict[str, int]] = {}
    for (group, level), value in quota.node.items():
        per_group.setdefault(group, {})[str(level)] = value
    return SubmitChoices(
        groups=groups,
        environments=list(environments_for(user=user).values_list("name", flat=True)),
        hints={"groups": per_group, "levels": {str(int(p)): p.label for p in Priority}},
    )


def chain_submission(*, chain: Chain) -> dict[str, Any]:
    """A chain's submission as ``experiment_submit`` arguments (to resubmit it, or show its CLI twin)."""
    return {
        "name": chain.name,
        "workspace": chain.workspace,
        "entrypoint": chain.entrypoint,
        "kind": chain.kind,
        "parameters": list(chain.parameters or []),
        "env_vars": dict(chain.env_vars or {}),
        "group": chain.node_group.name,
        "nodes": chain.node_count,
        "priority": chain.priority,
        "environment": chain.environment_name,
        "tags": chain.tag_names,
        "watchdog_seconds": chain.watchdog_seconds,
        "run_estimate_seconds": chain.run_estimate_seconds,
        "whole_life_state": chain.whole_life_state,
        "custom_rank": chain.custom_rank,
        "shared_with_team": chain.shared_with_team,
        "notes": chain.notes,
    }


def free_chain_name(*, user: User, name: str) -> str:
    """``name``, or ``name-2``, ``name-3`` … when an unfinished job of the user already has it."""
    taken = set(Chain.objects.filter(owner=user, finished=False, name__startswith=name).values_list("name", flat=True))
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def last_submission(*, user: User) -> tuple[str, str | None]:
    """The workspace and node group of the user's newest job ("", None without one): the submit
    form starts from them."""
    row = Chain.objects.filter(owner=user).order_by("-id").values_list("workspace", "node_group__name").first()
    return row if row is not None else ("", None)


def default_workspace(*, user: User) -> str:
    """The directory a new user's jobs would run in: a writable storage mount their mount rules give
    a training job, preferring one named after them (their home); "" when none.

    On the local backend ranks run on this machine and mounts do not apply, so it is the host
    directory (the mount's source) and only when it exists; on Kubernetes the path in the container.
    """
    local = settings.ROTA_BACKEND == "local"
    paths: list[str] = []
    for mount in mounts_for(user=user, task={"type": "training"}):
        if mount.read_only:
            continue
        if not local:
            paths.append(mount.container_path)
        elif mount.kind == MountKind.HOST_PATH and os.path.isdir(mount.source):
            paths.append(mount.source)
    own = [p for p in paths if user.username in p.split("/")]
    return (own or paths or [""])[0]


def default_group(*, choices: SubmitChoices, last_group: str | None) -> str | None:
    """The node group the submit form starts with: the group of the user's newest job, else the
    training group (one with GPU nodes) where the user may hold the most nodes, else the first."""
    groups = choices.groups
    if not groups:
        return None
    if last_group in groups:
        return last_group
    training = set(
        Node.objects.filter(group__name__in=groups, gpu_count__gt=0).values_list("group__name", flat=True).distinct()
    )
    quotas = choices.hints["groups"]
    most = {g: max(quotas.get(g, {}).values(), default=0) for g in sorted(training)}
    if most:
        return max(most, key=lambda g: most[g])
    return groups[0]


# --- dashboard ----------------------------------------------------------------------------------


@dataclass
class GroupQuota:
    group: str
    rows: list[QuotaLevel]


def my_quota(*, user: User) -> list[GroupQuota]:
    """Nodes the user holds and may hold per node group and priority (levels with quota or use)."""
    by_group: dict[str, list[QuotaLevel]] = defaultdict(list)
    for level in quota_overview(user=user).levels:
        by_group[level.group].append(level)
    return [GroupQuota(group=g, rows=rows) for g, rows in sorted(by_group.items())]


@dataclass
class GroupOverview:
    name: str
    total: int = 0
    busy: int = 0
    free: int = 0
    not_ready: int = 0
    disabled: int = 0
    training: bool = False  # has GPU nodes (a CPU group for dev containers runs no training)

    @property
    def busy_percent(self) -> int:
        usable = self.busy + self.free
        return round(100 * self.busy / usable) if usable else 0


#: the cache key of the node counts (``cluster_overview``); bump the version when their shape changes
CLUSTER_OVERVIEW_KEY = "rota:web:cluster-overview:v1"


def cluster_overview() -> list[GroupOverview]:
    """Nodes per node group: busy (a rank holds it), free (ready and idle), not ready, disabled.

    The same for everyone and read on every dashboard load and live refresh (a probe of the held
    ranks per node: a few milliseconds with 1,500 nodes), so, like ``queue_summary``, it is
    computed at most once per ``ROTA_QUEUE_SUMMARY_SECONDS`` in the shared cache. Counts only."""
    seconds = settings.ROTA_QUEUE_SUMMARY_SECONDS
    if seconds > 0:
        cached = cache.get(CLUSTER_OVERVIEW_KEY)
        if cached is not None:
            return [GroupOverview(**row) for row in cached]
    groups = _count_nodes()
    if seconds > 0:
        cache.set(CLUSTER_OVERVIEW_KEY, [asdict(g) for g in groups], timeout=seconds)
    return groups


def _count_nodes() -> list[GroupOverview]:
    holding = Rank.objects.filter(node=OuterRef("pk"), holds_node=True)
    groups: dict[str, GroupOverview] = {}
    for name, state, busy, gpus in (
        Node.objects.annotate(busy=Exists(holding)).values_list("group__name", "state", "busy", "gpu_count").order_by()
    ):
        g = groups.setdefault(name, GroupOverview(name=name))
        g.total += 1
        g.training = g.training or gpus > 0
        if busy:
            g.busy += 1
        elif state == NodeState.READY:
            g.free += 1
        elif state == NodeState.DISABLED:
            g.disabled += 1
        else:
            g.not_ready += 1
    return [groups[k] for k in sorted(groups)]


@dataclass
class QueueLane:
    priority: int
    priority_name: str
    running_jobs: int = 0
    running_nodes: int = 0
    waiting_jobs: int = 0
    waiting_nodes: int = 0
    mine: list[Chain] = field(default_factory=list)


@dataclass
class GroupQueues:
    group: str
    lanes: list[QueueLane]


#: the cache key of the queue summary (``queue_summary``); bump the version when its shape changes
QUEUE_SUMMARY_KEY = "rota:web:queue-summary:v1"


def queue_summary() -> list[dict[str, Any]]:
    """Jobs and nodes running and waiting per node group, queue status and priority: the same for
    everyone, so it is computed at most once per ``ROTA_QUEUE_SUMMARY_SECONDS`` (shared cache) and
    not per page load — it reads every live attempt (tens of milliseconds with thousands waiting).
    Holds counts only, never a job or a user."""
    seconds = settings.ROTA_QUEUE_SUMMARY_SECONDS
    if seconds > 0:
        cached = cache.get(QUEUE_SUMMARY_KEY)
        if cached is not None:
            return list(cached)
    rows = list(
        Attempt.objects.filter(queue_status__in=[QueueStatus.QUEUED, QueueStatus.SCHEDULED])
        .exclude(queue_status=QueueStatus.QUEUED, chain__held=True)
        .values("chain__node_group__name", "queue_status", "effective_priority", "priority")
        .annotate(jobs=Count("id"), nodes=Sum("chain__node_count"))
        .order_by()
    )
    if seconds > 0:
        cache.set(QUEUE_SUMMARY_KEY, rows, timeout=seconds)
    return rows


def priority_queues(*, user: User, my_chains: list[Chain]) -> list[GroupQueues]:
    """Jobs running and waiting per node group and priority level, with the user's own in each lane.

    Running jobs count at the level they were admitted at; waiting ones at the level they asked for
    (AUTO is its own lane until the scheduler starts it). Held jobs wait for a person, not for
    nodes, and are not counted. The counts may be a few seconds old (``queue_summary``); the
    user's own jobs are always current."""
    lanes: dict[str, dict[int, QueueLane]] = defaultdict(dict)

    def lane(group: str, level: int) -> QueueLane:
        found = lanes[group].get(level)
        if found is None:
            found = lanes[group][level] = QueueLane(priority=level, priority_name=Priority(level).label)
        return found

    for row in queue_summary():
        group = row["chain__node_group__name"]
        if row["queue_status"] == QueueStatus.SCHEDULED:
            level = row["effective_priority"] if row["effective_priority"] is not None else row["priority"]
            item = lane(group, level)
            item.running_jobs += row["jobs"]
            item.running_nodes += row["nodes"] or 0
        else:
            item = lane(group, row["priority"])
            item.waiting_jobs += row["jobs"]
            item.waiting_nodes += row["nodes"] or 0
    for chain in my_chains:
        attempt = chain.latest_attempt
        if attempt is None or chain.status == ChainStatus.HELD:
            continue
        level = attempt.effective_priority if attempt.effective_priority is not None else attempt.priority
        lane(chain.node_group.name, level).mine.append(chain)
    order = [int(p) for p in QUOTA_LEVELS] + [int(Priority.AUTO)]
    result = []
    for group in sorted(lanes):
        present = lanes[group]
        result.append(GroupQueues(group=group, lanes=[present[p] for p in order if p in present]))
    return result


@dataclass
class Dashboard:
    running: list[Chain]
    waiting: list[Chain]
    running_count: int
    waiting_count: int
    nodes_held: int
    quota: list[GroupQuota]
    cluster: list[GroupOverview]
    queues: list[GroupQueues]
    notices: list[Notice]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def blocked(self) -> list[Chain]:
        """Waiting jobs that can never start as submitted (HAI's "error trainings" callout)."""
        return [c for c in self.waiting if c.latest_attempt is not None and c.latest_attempt.infeasible]

    @property
    def more_jobs(self) -> bool:
        """More unfinished jobs than the dashboard lists."""
        return self.running_count + self.waiting_count > len(self.running) + len(self.waiting)

    @property
    def cluster_busy(self) -> int:
        """Training nodes busy (CPU groups for dev containers are not counted)."""
        return sum(g.busy for g in self.cluster if g.training)

    @property
    def cluster_total(self) -> int:
        """Training nodes in all."""
        return sum(g.total for g in self.cluster if g.training)


DASHBOARD_JOBS = 50


def dashboard(*, user: User) -> Dashboard:
    """Everything on the user's dashboard: their unfinished jobs, quota, the cluster and its queues."""
    mine = list(chain_list(user=user, own=True).filter(finished=False).order_by("-id")[:DASHBOARD_JOBS])
    counts = dict(
        Chain.objects.filter(owner_id=user.pk, finished=False)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("status", "n")
    )
    running = [c for c in mine if c.status in ACTIVE_STATUSES]
    waiting = sorted(
        (c for c in mine if c.status in WAITING_STATUSES),
        key=lambda c: (
            c.status == ChainStatus.HELD,
            (c.latest_attempt.queue_position if c.latest_attempt else None) or 10**9,
            c.pk,
        ),
    )
    quota = my_quota(user=user)
    return Dashboard(
        running=running,
        waiting=waiting,
        running_count=sum(counts.get(s, 0) for s in ACTIVE_STATUSES),
        waiting_count=sum(counts.get(s, 0) for s in WAITING_STATUSES),
        nodes_held=sum(row.used for g in quota for row in g.rows),
        quota=quota,
        cluster=cluster_overview(),
        queues=priority_queues(user=user, my_chains=mine),
        notices=notices_for(user=user),
    )
