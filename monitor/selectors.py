"""Reads of the admin pages. Each function runs a constant number of queries whatever the number
of users, nodes or jobs (the page tests pin the counts), reading the domain apps' models and
selectors only: the admin pages write nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from apps.accounts.choices import AdminGroup
from apps.accounts.models import User
from apps.experiments.choices import ChainStatus
from apps.experiments.models import Chain, Rank

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
