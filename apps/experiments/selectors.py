"""Reads of experiments: visibility, lookup by id or name, lists, detail, quota usage."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from apps.accounts.models import User
from apps.core.errors import NotFound
from apps.core.priorities import Priority
from apps.experiments.choices import QueueStatus, SuspendReason
from apps.experiments.models import Attempt, Chain, ChainTag, Rank
from apps.quotas.selectors import ResolvedQuota, quota_resolve


def chains_visible_to(*, user: User) -> QuerySet[Chain]:
    """Own chains, chains shared with the user's team, or everything for platform admins.

    Written on ``owner_id`` with the team-mates' keys read first (one small query, when the user
    has a team) and given as a list: a join to the users made PostgreSQL guess a handful of rows
    for a user with thousands of jobs and sort them all, and a sub-select inside the ``OR`` cannot
    use an index, so every count and deep page scanned the whole table; ``owner_id = me OR
    (owner_id IN (…) AND shared)`` reads the owner index for both sides (docs/PERFORMANCE.md)."""
    qs = Chain.objects.all()
    if user.is_platform_admin:
        return qs
    condition = Q(owner_id=user.pk)
    if user.team_id is not None:
        mates = list(User.objects.filter(team_id=user.team_id).exclude(pk=user.pk).values_list("pk", flat=True))
        if mates:
            condition |= Q(shared_with_team=True, owner_id__in=mates)
    return qs.filter(condition)


def chains_owned_by(*, user: User) -> QuerySet[Chain]:
    """The user's own chains (always visible to them): the cheapest query for "my jobs"."""
    return Chain.objects.filter(owner_id=user.pk)


def chain_visible(*, user: User, chain: Chain) -> bool:
    return chains_visible_to(user=user).filter(pk=chain.pk).exists()


def chain_get(*, user: User, key: str | int) -> Chain:
    """A chain by id, or by name among the user's own chains (the unfinished one, else the newest)."""
    visible = chains_visible_to(user=user)
    text = str(key).strip()
    chain: Chain | None = None
    if text.isdigit():
        chain = visible.filter(pk=int(text)).first()
    if chain is None and text:
        chain = Chain.objects.filter(owner=user, name=text).order_by("finished", "-id").first()
    if chain is None:
        raise NotFound(f"No job {text!r} that you can see.")
    return chain


def chain_list(*, user: User, own: bool = False) -> QuerySet[Chain]:
    """The list query: one row per chain with its latest attempt, tags and owner (constant queries).

    ``own``: only the user's own chains (the portal's default scope, the dashboard)."""
    base = chains_owned_by(user=user) if own else chains_visible_to(user=user)
    return (
        base.select_related("latest_attempt", "owner", "node_group")
        .prefetch_related(Prefetch("tags", queryset=ChainTag.objects.order_by("name")))
        .order_by("-id")
    )


def chain_detail(*, user: User, key: str | int) -> Chain:
    chain = chain_get(user=user, key=key)
    return (
        Chain.objects.select_related("latest_attempt", "owner__team", "node_group", "environment")
        .prefetch_related(
            Prefetch("tags", queryset=ChainTag.objects.order_by("name")),
            Prefetch(
                "attempts",
                queryset=Attempt.objects.order_by("index").prefetch_related(
                    Prefetch("ranks", queryset=Rank.objects.select_related("node").order_by("rank"))
                ),
            ),
        )
        .get(pk=chain.pk)
    )


def log_attempt_ids(*, chain: Chain) -> list[int]:
    """Attempts that have (or may have) logs, in order: those that were ever scheduled, and the
    latest. A held or waiting next attempt gets no separator until it runs."""
    rows = list(Attempt.objects.filter(chain=chain).order_by("index").values_list("pk", "scheduled_at"))
    ran = [pk for pk, scheduled_at in rows if scheduled_at is not None]
    return ran or [rows[-1][0]]


def attempt_runtime_seconds(attempt: Attempt, now: datetime | None = None) -> float:
    if attempt.started_at is None:
        return 0.0
    end = attempt.finished_at or now or timezone.now()
    return max(0.0, (end - attempt.started_at).total_seconds())


#: Suspensions the platform decided (a person's suspend or the job's own are not preemptions).
PLATFORM_SUSPENSIONS = (
    SuspendReason.PREEMPTED.value,
    SuspendReason.TIME_SHARE.value,
    SuspendReason.OVER_QUOTA.value,
    SuspendReason.NODE_NOT_READY.value,
    SuspendReason.UNSCHEDULABLE.value,
)


def work_lost_gpu_hours(
    *, gpus: int | None, started_at: datetime | None, last_checkpoint_at: datetime | None, finished_at: datetime | None
) -> float:
    """GPU-hours of work a suspended attempt lost: the GPUs it held × the time from its last
    checkpoint (or its start) to its end — the work its next attempt does again. 0 while it runs."""
    since = max((t for t in (started_at, last_checkpoint_at) if t is not None), default=None)
    if since is None or finished_at is None or not gpus:
        return 0.0
    return gpus * max(0.0, (finished_at - since).total_seconds()) / 3600


def quota_usage(*, user: User) -> dict[tuple[str, int], int]:
    """Nodes the user holds now per (node group, quota level): starting, running, suspending, stopping."""
    used: dict[tuple[str, int], int] = defaultdict(int)
    rows = Attempt.objects.filter(chain__owner=user, queue_status=QueueStatus.SCHEDULED).values_list(
        "chain__node_group__name", "quota_priority", "chain__node_count"
    )
    for group, level, count in rows:
        if level is not None:
            used[(group, level)] += count
    return dict(used)


@dataclass(frozen=True)
class QuotaLevel:
    """One (node group, quota level) a user has quota at or holds nodes at."""

    group: str
    priority: int
    priority_name: str
    used: int
    quota: int
    limit: int | None

    @property
    def percent(self) -> int:
        if self.quota <= 0:
            return 100 if self.used else 0
        return min(100, round(100 * self.used / self.quota))

    @property
    def over(self) -> bool:
        return self.used > self.quota


@dataclass(frozen=True)
class QuotaOverview:
    """A user's resolved quota and, per level with quota or use, what they hold of it."""

    resolved: ResolvedQuota
    levels: list[QuotaLevel]


def quota_overview(*, user: User) -> QuotaOverview:
    """The one answer to "how much may I use and how much do I use" (the portal's quota panel and
    ``GET /api/quota/``): the resolved quota plus current use, levels ordered by node group, then
    highest priority first (three queries)."""
    quota = quota_resolve(user=user)
    used = quota_usage(user=user)
    levels = [
        QuotaLevel(
            group=group,
            priority=level,
            priority_name=Priority(level).label,
            used=used.get((group, level), 0),
            quota=quota.node.get((group, level), 0),
            limit=quota.node_limit.get((group, level)),
        )
        for group, level in sorted(set(quota.node) | set(used), key=lambda k: (k[0], -k[1]))
    ]
    return QuotaOverview(resolved=quota, levels=levels)


@dataclass(frozen=True)
class NodeHolder:
    """The job running on a node. ``job``, ``name`` and ``owner`` are None for a viewer who may not
    see that job (another user's, not shared with them): they learn only that the node is busy."""

    job: int | None
    attempt: str | None  # "<job>.<attempt number from 1>", as the portal shows attempts
    name: str | None
    owner: str | None


def node_holders(*, user: User, node_ids: list[int] | None = None) -> dict[int, NodeHolder]:
    """Node id → the job holding it, for every busy node (or only those of ``node_ids``: a page of
    the node list), as ``user`` may see it. At most two queries, whatever the number of nodes and jobs."""
    held = Rank.objects.filter(holds_node=True)
    if node_ids is not None:
        held = held.filter(node_id__in=node_ids)
    rows = list(
        held.values_list(
            "node_id", "attempt__chain_id", "attempt__index", "attempt__chain__name", "attempt__chain__owner__username"
        )
    )
    holding = {row[1] for row in rows}
    visible = set(chains_visible_to(user=user).filter(pk__in=holding).values_list("pk", flat=True)) if rows else set()
    holders: dict[int, NodeHolder] = {}
    for node_id, chain_id, index, name, owner in rows:
        if chain_id in visible:
            holders[node_id] = NodeHolder(chain_id, f"{chain_id}.{index + 1}", name, owner)
        else:
            holders[node_id] = NodeHolder(None, None, None, None)
    return holders
