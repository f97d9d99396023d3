"""Reads of the admin pages. Each function runs a constant number of queries whatever the number
of users, nodes or jobs (the page tests pin the counts), reading the domain apps' models and
selectors only: the admin pages write nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from apps.accounts.choices import AdminGroup
from apps.accounts.models import User
from apps.cluster.choices import NodeState
from apps.cluster.models import Environment, Node, NodeGroup
from apps.containers.choices import ON_NODE
from apps.containers.models import Container, ContainerGroupPolicy
from apps.core.models import AuditEntry
from apps.core.priorities import QUOTA_LEVELS
from apps.experiments.choices import ChainStatus
from apps.experiments.models import Chain, ChainTag, Rank
from apps.experiments.selectors import NodeHolder, quota_usage
from apps.quotas.choices import QuotaKind
from apps.quotas.models import Quota
from apps.quotas.selectors import quota_resolve

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
    nodes = Rank.objects.filter(holds_node=True, attempt__chain__owner=OuterRef("pk")).values("attempt__chain__owner")
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
