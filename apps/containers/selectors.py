"""Reads of development containers: visibility, quota use, and what the scheduler needs."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.cluster.models import NodeGroup
from apps.containers.choices import ON_NODE, DesiredState, GroupKind, Protocol
from apps.containers.models import Container, ContainerGroupPolicy, ContainerService
from apps.core.errors import NotFound
from apps.quotas.selectors import JupyterQuota, quota_resolve


def containers_visible_to(user: User) -> QuerySet[Container]:
    """Live (not deleted) containers ``user`` may see: their own, or every one for platform admins."""
    qs = Container.objects.filter(deleted_at__isnull=True).select_related("owner", "node_group", "node", "environment")
    if user.is_platform_admin:
        return qs
    return qs.filter(owner=user)


def container_get(*, user: User, pk: int | None = None, owner: str | None = None, name: str | None = None) -> Container:
    """One container ``user`` may see, by id or by (owner name, container name); NotFound otherwise
    (someone who may not see it is told it does not exist)."""
    qs = containers_visible_to(user).prefetch_related("services")
    if pk is not None:
        found = qs.filter(pk=pk).first()
    else:
        found = qs.filter(owner__username=owner or user.username, name=name or "").first()
    if found is None:
        raise NotFound(_("No such container."))
    return found


def group_policy(node_group: NodeGroup) -> ContainerGroupPolicy:
    """The group's container policy (an unsaved default when the admin set none)."""
    found = ContainerGroupPolicy.objects.filter(node_group=node_group).first()
    return found or ContainerGroupPolicy(node_group=node_group, kind=GroupKind.SHARED)


@dataclass(frozen=True)
class QuotaUse:
    """A user's container use in one node group against their quota there."""

    group: str
    containers: int
    cpu: int
    memory_gib: int
    gpus: int
    ports: int
    quota: JupyterQuota


def _tcp_ports(containers: QuerySet[Container]) -> int:
    ssh = containers.filter(ssh=True).count()
    custom = ContainerService.objects.filter(container__in=containers, protocol=Protocol.TCP).count()
    return ssh + custom


def quota_use(*, user: User, node_group: NodeGroup, exclude: int | None = None) -> QuotaUse:
    """What ``user`` uses in ``node_group``: containers (all live ones), CPUs/memory/GPUs (the ones
    wanted running) and exposed TCP ports; ``exclude`` leaves one container out (an edit)."""
    live = Container.objects.filter(owner=user, node_group=node_group, deleted_at__isnull=True)
    if exclude is not None:
        live = live.exclude(pk=exclude)
    running = live.filter(desired=DesiredState.RUNNING).aggregate(
        cpu=Coalesce(Sum("cpu"), 0), memory=Coalesce(Sum("memory_gib"), 0), gpus=Coalesce(Sum("gpus"), 0)
    )
    quota = quota_resolve(user=user).jupyter.get(node_group.name, JupyterQuota())
    return QuotaUse(
        group=node_group.name,
        containers=live.count(),
        cpu=int(running["cpu"]),
        memory_gib=int(running["memory"]),
        gpus=int(running["gpus"]),
        ports=_tcp_ports(live),
        quota=quota,
    )


def quota_overview(*, user: User) -> list[QuotaUse]:
    """Use against quota in every group where ``user`` has container quota or containers."""
    resolved = quota_resolve(user=user).jupyter
    names = {g for g, q in resolved.items() if q.containers > 0}
    names |= set(
        Container.objects.filter(owner=user, deleted_at__isnull=True).values_list("node_group__name", flat=True)
    )
    groups = NodeGroup.objects.filter(name__in=names).order_by("name")
    return [quota_use(user=user, node_group=g) for g in groups]


def node_groups_for_containers(*, user: User) -> QuerySet[NodeGroup]:
    """Node groups where ``user`` may create containers (container quota > 0); admins: all."""
    if user.is_platform_admin:
        return NodeGroup.objects.order_by("name")
    resolved = quota_resolve(user=user).jupyter
    return NodeGroup.objects.filter(name__in=[g for g, q in resolved.items() if q.containers > 0]).order_by("name")


def nodes_holding_containers() -> set[int]:
    """Ids of nodes hosting containers the training scheduler must leave alone (every group not
    marked preemptible). One query."""
    return set(
        Container.objects.filter(status__in=ON_NODE, node__isnull=False)
        .exclude(node_group__container_policy__preemptible=True)
        .values_list("node_id", flat=True)
        .distinct()
    )


def containers_per_node() -> dict[int, int]:
    """node id → number of containers on it (for node pages)."""
    return dict(
        Container.objects.filter(status__in=ON_NODE, node__isnull=False)
        .values("node_id")
        .annotate(n=Count("id"))
        .values_list("node_id", "n")
    )


def containers_for_admin(*, q: str = "") -> QuerySet[Container]:
    qs = Container.objects.filter(deleted_at__isnull=True).select_related("owner", "node_group", "node")
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(owner__username__icontains=q) | Q(node__name__icontains=q))
    return qs.order_by("owner__username", "name")
