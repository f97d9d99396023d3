"""Reads of the cluster inventory, and mount resolution for a job."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from apps.accounts.models import User
from apps.cluster import templates
from apps.cluster.choices import MountAction, NodeState
from apps.cluster.models import MountRule, Node, NodeGroup


def nodes_list() -> QuerySet[Node]:
    return Node.objects.select_related("group").order_by("group__name", "name")


def node_groups_with_counts() -> QuerySet[NodeGroup]:
    return NodeGroup.objects.annotate(
        node_count=Count("nodes"),
        ready_count=Count("nodes", filter=Q(nodes__state=NodeState.READY)),
        disabled_count=Count("nodes", filter=Q(nodes__state=NodeState.DISABLED)),
    ).order_by("name")


@dataclass(frozen=True)
class ResolvedMount:
    rule: str
    kind: str
    source: str
    container_path: str
    read_only: bool


def mounts_for(*, user: User, task: dict[str, str]) -> list[ResolvedMount]:
    """The mounts a job of ``user`` gets.

    ``task`` holds ``id``, ``chain_id``, ``name``, ``type``, ``group`` and ``environment``.

    Precedence (highest first): the user's own conditional rules, the user's unconditional rules,
    their groups' conditional then unconditional rules, then ``public``'s; per container path the first add wins,
    and a matching ``remove`` for that path (or ``*``) takes it away whatever its rank.
    """
    groups = user.group_names() | {"public", user.role}
    rules = (
        MountRule.objects.filter(active=True)
        .filter(Q(owner_users=user) | Q(owner_groups__name__in=groups))
        .prefetch_related("owner_users", "owner_groups")
        .distinct()
        .order_by("name")
    )
    team = user.team.name if user.team_id and user.team else ""
    facts = {
        "role": user.role,
        "team": team,
        "username": user.username,
        "task_type": task.get("type", "training"),
        "group": task.get("group", ""),
        "environment": task.get("environment", ""),
    }
    context = {
        "user.username": user.username,
        "user.id": str(user.pk),
        "user.role": user.role,
        "user.team": team,
        "task.id": str(task.get("id", "")),
        "task.chain_id": str(task.get("chain_id", "")),
        "task.name": str(task.get("name", "")),
        "task.type": str(task.get("type", "training")),
        "task.group": str(task.get("group", "")),
        "task.environment": str(task.get("environment", "")),
    }

    ranked: list[tuple[int, str, MountRule]] = []
    for rule in rules:
        if not templates.conditions_match(rule.conditions, facts):
            continue
        own = any(u.pk == user.pk for u in rule.owner_users.all())
        specific_group = any(g.name in groups and g.name != "public" for g in rule.owner_groups.all())
        conditional = bool(rule.conditions)
        rank = (0 if own else 2 if specific_group else 4) + (0 if conditional else 1)
        ranked.append((rank, rule.name, rule))
    ranked.sort(key=lambda item: (item[0], item[1]))

    removed: set[str] = set()
    for _rank, _name, rule in ranked:
        if rule.action == MountAction.REMOVE:
            removed.add(rule.container_path)
    result: dict[str, ResolvedMount] = {}
    for _rank, _name, rule in ranked:
        if rule.action != MountAction.ADD:
            continue
        try:
            path = templates.expand(rule.container_path, context)
            source = templates.expand(rule.source, context)
        except ValueError:
            continue  # a placeholder without a value for this job (e.g. no team): the rule does not apply
        if "*" in removed or rule.container_path in removed or path in removed or path in result:
            continue
        result[path] = ResolvedMount(rule.name, rule.kind, source, path, rule.read_only)
    return [result[p] for p in sorted(result)]
