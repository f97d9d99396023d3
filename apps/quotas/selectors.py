"""Quota resolution: the one place that turns quota rows into what a user may use.

Rules (HAI's, with its bugs fixed):
- A user's groups for quotas are their Django groups, their team, ``public`` and their role
  (``internal`` / ``external``).
- For each resource, a row on the user overrides every group row.
- Otherwise, across the user's groups the **largest** value wins — except for ``node_limit``
  rows, where the **smallest** wins (a limit is a cap).
- The effective node quota for (node group, priority) is ``min(node quota, node limit)`` when a
  limit applies. Expired rows are ignored.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone

from apps.accounts.choices import PUBLIC_GROUP
from apps.accounts.models import User
from apps.cluster.models import Environment
from apps.core.priorities import QUOTA_LEVELS
from apps.quotas.choices import QuotaKind
from apps.quotas.models import Quota


@dataclass(frozen=True)
class JupyterQuota:
    containers: int = 0
    cpu: int = 0
    memory_gib: int = 0
    gpus: int = 0
    ports: int = 0


@dataclass(frozen=True)
class ResolvedQuota:
    """What one user may use, after resolution."""

    user_id: int
    node: Mapping[tuple[str, int], int] = field(default_factory=dict)  # effective (quota capped by limit)
    node_quota: Mapping[tuple[str, int], int] = field(default_factory=dict)
    node_limit: Mapping[tuple[str, int], int] = field(default_factory=dict)
    jupyter: Mapping[str, JupyterQuota] = field(default_factory=dict)
    environments: tuple[str, ...] = ()  # permitted, the default first

    def nodes(self, group: str, priority: int) -> int:
        return self.node.get((group, priority), 0)

    def ceiling(self, group: str) -> int:
        """The most nodes the user could ever hold at once in ``group`` at one level."""
        return max((v for (g, _p), v in self.node.items() if g == group), default=0)

    def may_use_environment(self, name: str) -> bool:
        return name in self.environments

    @property
    def default_environment(self) -> str | None:
        return self.environments[0] if self.environments else None


def quota_group_names(user: User) -> set[str]:
    """The groups whose quota rows apply to ``user``."""
    return user.group_names() | {PUBLIC_GROUP, user.role}


def _rows(user_ids: Iterable[int], group_names: Iterable[str]) -> list[dict[str, Any]]:
    now = timezone.now()
    queryset = (
        Quota.objects.filter(Q(user_id__in=list(user_ids)) | Q(group__name__in=list(group_names)))
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values("user_id", "group__name", "kind", "node_group__name", "priority", "environment__name", "value")
    )
    return [dict(row) for row in queryset]


def _resolve(user_id: int, groups: set[str], rows: list[dict[str, Any]]) -> ResolvedQuota:
    own: dict[tuple[Any, ...], int] = {}
    from_groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for row in rows:
        key = (row["kind"], row["node_group__name"], row["priority"], row["environment__name"])
        value = int(row["value"])
        if row["user_id"] == user_id:
            own[key] = value
        elif row["group__name"] in groups:
            from_groups[key].append(value)
    merged: dict[tuple[Any, ...], int] = {}
    for key, values in from_groups.items():
        merged[key] = min(values) if key[0] == QuotaKind.NODE_LIMIT else max(values)
    merged.update(own)

    node_quota: dict[tuple[str, int], int] = {}
    node_limit: dict[tuple[str, int], int] = {}
    jupyter: dict[str, dict[str, int]] = defaultdict(dict)
    environments: list[tuple[int, str]] = []
    for (kind, node_group, priority, environment), value in merged.items():
        if kind == QuotaKind.NODE:
            node_quota[(str(node_group), int(priority))] = value
        elif kind == QuotaKind.NODE_LIMIT:
            node_limit[(str(node_group), int(priority))] = value
        elif kind == QuotaKind.ENVIRONMENT:
            if value > 0:
                environments.append((value, str(environment)))
        else:
            jupyter[str(node_group)][str(kind)] = value
    node = {key: min(value, node_limit.get(key, value)) for key, value in node_quota.items()}
    environments.sort(key=lambda item: (-item[0], item[1]))
    return ResolvedQuota(
        user_id=user_id,
        node=node,
        node_quota=node_quota,
        node_limit=node_limit,
        jupyter={
            g: JupyterQuota(
                containers=v.get(QuotaKind.JUPYTER_CONTAINERS, 0),
                cpu=v.get(QuotaKind.JUPYTER_CPU, 0),
                memory_gib=v.get(QuotaKind.JUPYTER_MEMORY_GIB, 0),
                gpus=v.get(QuotaKind.JUPYTER_GPUS, 0),
                ports=v.get(QuotaKind.JUPYTER_PORTS, 0),
            )
            for g, v in jupyter.items()
        },
        environments=tuple(name for _value, name in environments),
    )


def quota_resolve(*, user: User) -> ResolvedQuota:
    """The resolved quota of one user (two queries)."""
    groups = quota_group_names(user)
    return _resolve(user.pk, groups, _rows([user.pk], groups))


def quota_resolve_many(*, user_ids: Iterable[int]) -> dict[int, ResolvedQuota]:
    """Resolved quotas of many users in a constant number of queries (for the scheduler)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    User_groups = User.groups.through
    groups_by_user: dict[int, set[str]] = defaultdict(set)
    for uid, name in User_groups.objects.filter(user_id__in=ids).values_list("user_id", "group__name"):
        groups_by_user[uid].add(name)
    for uid, role, team in User.objects.filter(pk__in=ids).values_list("pk", "role", "team__name"):
        groups_by_user[uid] |= {PUBLIC_GROUP, role}
        if team:
            groups_by_user[uid].add(team)
    all_groups = set().union(*groups_by_user.values()) if groups_by_user else set()
    rows = _rows(ids, all_groups)
    return {uid: _resolve(uid, groups_by_user.get(uid, {PUBLIC_GROUP}), rows) for uid in ids}


def quota_levels_with_quota(quota: ResolvedQuota, group: str) -> list[tuple[int, int]]:
    """(priority, nodes) for every level with quota in ``group``, highest level first."""
    return [(int(p), quota.nodes(group, int(p))) for p in QUOTA_LEVELS if quota.nodes(group, int(p)) > 0]


def quotas_list() -> list[Quota]:
    return list(
        Quota.objects.select_related("user", "group", "node_group", "environment").order_by("kind", "resource", "id")
    )


def environments_for(*, user: User) -> QuerySet[Environment]:
    """Environments the user may use, the default first (admins see all)."""
    if user.is_platform_admin:
        return Environment.objects.order_by("name")
    names = quota_resolve(user=user).environments
    order = {name: i for i, name in enumerate(names)}
    return Environment.objects.filter(name__in=names).order_by(
        Case(*[When(name=n, then=Value(i)) for n, i in order.items()], default=Value(len(order)))
    )
