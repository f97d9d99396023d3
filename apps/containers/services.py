"""Writes of development containers: create, edit, start, stop, restart, delete, keep.

Who may act: the owner, or a platform admin (whose writes are audited). Someone else is told the
container does not exist. Every service locks the container row (and, for quota checks, the
owner's row, so two creates at once cannot both squeeze under the quota), changes it, sends a
``container.status`` event to the owner and the admins after commit, and asks for the pass that
acts next: a scheduling pass places queued containers (``containers_place``, called from the
scheduling pass), the launcher's container pass starts and stops services.

Quota (per user and node group, ``apps.quotas``): the number of live containers, and the CPUs,
memory and GPUs of the containers wanted running, never exceed it; nor do exposed TCP ports.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from apps.accounts.choices import AdminGroup
from apps.accounts.models import User
from apps.cluster.choices import NodeState
from apps.cluster.models import Environment, Node, NodeGroup
from apps.containers import placement
from apps.containers.choices import (
    BUILTIN_SERVICES,
    ON_NODE,
    ContainerStatus,
    DesiredState,
    GroupKind,
    Protocol,
    StopReason,
)
from apps.containers.events import ContainerChanged
from apps.containers.models import Container, ContainerGroupPolicy, ContainerService
from apps.containers.selectors import QuotaUse, quota_use
from apps.core.audit import audit_record
from apps.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from apps.core.passes import CONTAINER_RECONCILE as RECONCILE
from apps.core.passes import SCHEDULE
from apps.core.tasks import enqueue_on_commit
from apps.experiments.models import Rank  # the rank table says which nodes jobs hold
from apps.notifications.choices import NotificationKind
from apps.notifications.services import notify
from apps.quotas.selectors import quota_resolve
from portal.realtime import ADMINS_GROUP, send_event_on_commit, user_group

_SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
MAX_CUSTOM_SERVICES = 8


# -- helpers ------------------------------------------------------------------------------------


def _fail(field: str, message: str, *, code: str = "invalid") -> ApplicationError:
    return ApplicationError(f"{field}: {message}", code=code, fields={field: [message]})


def emit(container: Container) -> None:
    """Tell the owner's pages and the admins' that the container changed (after commit)."""
    send_event_on_commit(
        [user_group(container.owner_id), ADMINS_GROUP],
        ContainerChanged(
            container_id=container.pk,
            owner_id=container.owner_id,
            name=container.name,
            status=container.status,
            desired=container.desired,
            node=container.node.name if container.node_id and container.node else "",
            message=container.status_message,
            stop_reason=container.stop_reason,
            idle_warned=container.idle_warned_at is not None,
        ),
    )


def _locked(actor: User, container: Container) -> Container:
    """The container row, locked, if ``actor`` may act on it; NotFound otherwise."""
    found = (
        Container.objects.select_for_update(of=("self",))
        .select_related("owner", "node_group", "node")
        .filter(pk=container.pk, deleted_at__isnull=True)
        .first()
    )
    if found is None or not (found.owner_id == actor.pk or actor.is_platform_admin):
        raise NotFound(_("No such container."))
    return found


def _audit_if_admin(actor: User, container: Container, action: str, after: dict[str, Any] | None = None) -> None:
    if actor.pk != container.owner_id:
        audit_record(
            actor=actor,
            action=f"container.{action}",
            target=container,
            target_repr=f"{container.owner.username}/{container.name}",
            after=after,
        )


def _validate_services(services: Iterable[Mapping[str, Any]], ssh: bool) -> list[dict[str, Any]]:
    cleaned: list[dict[str, Any]] = []
    names: set[str] = set()
    ports: set[int] = {8888} | ({22} if ssh else set())
    for i, raw in enumerate(services):
        field = f"services[{i}]"
        name = str(raw.get("name") or "").strip()
        if not _SERVICE_NAME.fullmatch(name):
            raise _fail(field, _("A service name uses 1–32 lower-case letters, digits and '-'."))
        if name in BUILTIN_SERVICES or name in names:
            raise _fail(field, _("The service name '%(n)s' is taken.") % {"n": name})
        try:
            port = int(raw.get("port"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            port = 0
        if not 1 <= port <= 65535:
            raise _fail(field, _("The port must be between 1 and 65535."))
        if port in ports:
            raise _fail(field, _("Port %(p)s is already used by another service of this container.") % {"p": port})
        protocol = str(raw.get("protocol") or Protocol.HTTP)
        if protocol not in Protocol.values:
            raise _fail(field, _("The protocol must be http or tcp."))
        command = str(raw.get("command") or "").strip()
        if not command or len(command) > 2000:
            raise _fail(field, _("Give the command that starts the service (at most 2000 characters)."))
        names.add(name)
        ports.add(port)
        cleaned.append({"name": name, "port": port, "protocol": protocol, "command": command})
    if len(cleaned) > MAX_CUSTOM_SERVICES:
        raise _fail("services", _("At most %(n)s custom services.") % {"n": MAX_CUSTOM_SERVICES})
    return cleaned


def _check_resources(node_group: NodeGroup, cpu: int, memory_gib: int, gpus: int) -> None:
    for field, value, low in (("cpu", cpu, 1), ("memory_gib", memory_gib, 1), ("gpus", gpus, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low or value > 4096:
            raise _fail(field, _("Give a whole number of at least %(n)s.") % {"n": low})
    nodes = list(
        Node.objects.filter(group=node_group)
        .exclude(state=NodeState.DISABLED)
        .values_list("cpu", "memory_bytes", "gpu_count")
    )
    if not nodes:
        raise _fail("node_group", _("Node group %(g)s has no usable node.") % {"g": node_group.name})
    if not any(cpu <= c and memory_gib * 2**30 <= m and gpus <= g for c, m, g in nodes):
        biggest = max(nodes)
        raise _fail(
            "cpu",
            _("No node of %(g)s is that big (the largest has %(c)s CPUs, %(m)s GiB memory, %(gp)s GPUs); ask for less.")
            % {"g": node_group.name, "c": biggest[0], "m": biggest[1] // 2**30, "gp": biggest[2]},
        )


def _quota_error(use: QuotaUse, what: str, used: int, asked: int, total: int) -> ApplicationError:
    return ApplicationError(
        _(
            "Container quota exceeded in %(g)s: %(what)s %(used)s in use + %(asked)s asked > %(total)s allowed."
            " Stop or shrink another container, or ask an admin for more quota."
        )
        % {"g": use.group, "what": what, "used": used, "asked": asked, "total": total},
        code="quota_exceeded",
        status=403,
        extra={"group": use.group, "resource": what},
    )


def _check_quota(
    *,
    owner: User,
    node_group: NodeGroup,
    cpu: int,
    memory_gib: int,
    gpus: int,
    tcp_ports: int,
    running: bool,
    exclude: int | None = None,
) -> None:
    """Raise ``quota_exceeded`` unless one more container (or ``exclude`` edited) fits the quota."""
    use = quota_use(user=owner, node_group=node_group, exclude=exclude)
    q = use.quota
    if use.containers + 1 > q.containers:
        raise _quota_error(use, _("containers"), use.containers, 1, q.containers)
    if use.ports + tcp_ports > q.ports and tcp_ports:
        raise _quota_error(use, _("TCP ports"), use.ports, tcp_ports, q.ports)
    if not running:
        return
    for label, used, asked, total in (
        (_("CPUs"), use.cpu, cpu, q.cpu),
        (_("memory GiB"), use.memory_gib, memory_gib, q.memory_gib),
        (_("GPUs"), use.gpus, gpus, q.gpus),
    ):
        if asked and used + asked > total:
            raise _quota_error(use, label, used, asked, total)


def _lock_owner(owner: User) -> None:
    User.objects.select_for_update().filter(pk=owner.pk).first()


def _queue(container: Container, now: datetime) -> None:
    container.desired = DesiredState.RUNNING
    container.status = ContainerStatus.QUEUED
    container.status_message = ""
    container.stop_reason = StopReason.NONE
    container.queued_at = now
    container.idle_warned_at = None
    container.kept_at = None


# -- services -----------------------------------------------------------------------------------


@transaction.atomic
def container_create(
    *,
    actor: User,
    name: str,
    node_group: NodeGroup,
    environment: Environment | None = None,
    cpu: int = 1,
    memory_gib: int = 4,
    gpus: int = 0,
    ssh: bool = False,
    startup_script: str = "",
    services: Iterable[Mapping[str, Any]] = (),
    start: bool = True,
) -> Container:
    """Create a container of ``actor`` (started at once unless ``start`` is False).

    Checks the name, the services, the resources against the group's nodes, the environment
    against the user's environment quota, and the container quota (under a lock of the owner)."""
    name = (name or "").strip()
    container = Container(
        owner=actor,
        name=name,
        node_group=node_group,
        environment=environment,
        cpu=cpu,
        memory_gib=memory_gib,
        gpus=gpus,
        ssh=bool(ssh),
        startup_script=startup_script or "",
    )
    try:
        container.full_clean(exclude=["owner", "node_group", "environment"], validate_unique=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ApplicationError(f"{field}: {messages[0]}", fields=exc.message_dict) from exc
    custom = _validate_services(services, bool(ssh))
    _check_resources(node_group, cpu, memory_gib, gpus)
    if environment is not None and not (
        actor.is_platform_admin or quota_resolve(user=actor).may_use_environment(environment.name)
    ):
        raise _fail("environment", _("You may not use environment %(e)s.") % {"e": environment.name})
    _lock_owner(actor)
    if Container.objects.filter(owner=actor, name=name, deleted_at__isnull=True).exists():
        raise Conflict(_("You already have a container named %(n)s.") % {"n": name}, fields={"name": [_("Taken.")]})
    tcp = int(bool(ssh)) + sum(1 for s in custom if s["protocol"] == Protocol.TCP)
    _check_quota(
        owner=actor, node_group=node_group, cpu=cpu, memory_gib=memory_gib, gpus=gpus, tcp_ports=tcp, running=start
    )
    now = timezone.now()
    if start:
        _queue(container, now)
    try:
        with transaction.atomic():
            container.save()
    except IntegrityError as exc:
        raise Conflict(_("You already have a container named %(n)s.") % {"n": name}) from exc
    ContainerService.objects.bulk_create([ContainerService(container=container, **s) for s in custom])
    emit(container)
    if start:
        enqueue_on_commit(SCHEDULE)
    return container


EDITABLE = ("environment", "cpu", "memory_gib", "gpus", "ssh", "startup_script")


@transaction.atomic
def container_update(
    *, actor: User, container: Container, services: Iterable[Mapping[str, Any]] | None = None, **changes: Any
) -> Container:
    """Edit a container's spec. A running container keeps its current spec; the edits take effect at
    its next (re)start (the page says so). Resources are checked against quota again."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise _fail(sorted(unknown)[0], _("This field cannot be changed."))
    container = _locked(actor, container)
    for key, value in changes.items():
        setattr(container, key, value)
    try:
        container.full_clean(exclude=["owner", "node_group", "environment", "name"], validate_unique=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ApplicationError(f"{field}: {messages[0]}", fields=exc.message_dict) from exc
    current = [
        {"name": s.name, "port": s.port, "protocol": s.protocol, "command": s.command} for s in container.services.all()
    ]
    custom = _validate_services(current if services is None else services, container.ssh)
    _check_resources(container.node_group, container.cpu, container.memory_gib, container.gpus)
    env = container.environment
    if (
        "environment" in changes
        and env is not None
        and not (actor.is_platform_admin or quota_resolve(user=container.owner).may_use_environment(env.name))
    ):
        raise _fail("environment", _("You may not use environment %(e)s.") % {"e": env.name})
    _lock_owner(container.owner)
    tcp = int(container.ssh) + sum(1 for s in custom if s["protocol"] == Protocol.TCP)
    _check_quota(
        owner=container.owner,
        node_group=container.node_group,
        cpu=container.cpu,
        memory_gib=container.memory_gib,
        gpus=container.gpus,
        tcp_ports=tcp,
        running=container.desired == DesiredState.RUNNING,
        exclude=container.pk,
    )
    container.edited_at = timezone.now()
    container.save()
    if services is not None:
        keep_ports = {(s.name, s.protocol): s.node_port for s in container.services.all()}
        container.services.all().delete()
        ContainerService.objects.bulk_create(
            [
                ContainerService(
                    container=container,
                    node_port=keep_ports.get((s["name"], s["protocol"])) if s["protocol"] == Protocol.TCP else None,
                    **s,
                )
                for s in custom
            ]
        )
    _audit_if_admin(actor, container, "update", after={k: str(v) for k, v in changes.items()})
    emit(container)
    return container


@transaction.atomic
def container_start(*, actor: User, container: Container) -> Container:
    """Ask for the container to run: it is queued for a node (quota checked first). Starting one
    already queued, starting or running changes nothing."""
    container = _locked(actor, container)
    if container.desired == DesiredState.RUNNING and container.status != ContainerStatus.FAILED:
        return container
    _lock_owner(container.owner)
    use = quota_use(user=container.owner, node_group=container.node_group, exclude=container.pk)
    q = use.quota
    for label, used, asked, total in (
        (_("CPUs"), use.cpu, container.cpu, q.cpu),
        (_("memory GiB"), use.memory_gib, container.memory_gib, q.memory_gib),
        (_("GPUs"), use.gpus, container.gpus, q.gpus),
    ):
        if asked and used + asked > total:
            raise _quota_error(use, label, used, asked, total)
    now = timezone.now()
    if container.status in (ContainerStatus.STOPPED, ContainerStatus.FAILED):
        _queue(container, now)
    else:  # still stopping: the launcher queues it again once its services are down
        container.desired = DesiredState.RUNNING
    container.save()
    _audit_if_admin(actor, container, "start")
    emit(container)
    enqueue_on_commit(SCHEDULE)
    enqueue_on_commit(RECONCILE)
    return container


def _stop(container: Container, reason: str, message: str = "") -> None:
    """Move a locked container towards stopped (the launcher finishes what runs)."""
    container.stop_reason = reason
    container.status_message = message
    container.idle_warned_at = None
    if container.status in ON_NODE:
        container.status = ContainerStatus.STOPPING
    elif container.status == ContainerStatus.QUEUED:
        container.status = ContainerStatus.STOPPED
        container.stopped_at = timezone.now()


@transaction.atomic
def container_stop(*, actor: User, container: Container, reason: str = StopReason.USER) -> Container:
    """Stop the container: queued → stopped at once; on a node → stopping (the launcher stops its
    services and frees the node). Stopping a stopped container changes nothing."""
    container = _locked(actor, container)
    if container.desired == DesiredState.STOPPED and container.status in (
        ContainerStatus.STOPPED,
        ContainerStatus.STOPPING,
        ContainerStatus.FAILED,
    ):
        return container
    if reason == StopReason.USER and actor.pk != container.owner_id:
        reason = StopReason.ADMIN
    container.desired = DesiredState.STOPPED
    _stop(container, reason)
    container.save()
    _audit_if_admin(actor, container, "stop")
    emit(container)
    enqueue_on_commit(RECONCILE)
    enqueue_on_commit(SCHEDULE)
    return container


@transaction.atomic
def container_restart(*, actor: User, container: Container) -> Container:
    """Stop the container's services and start it again with its current spec (edits apply)."""
    container = _locked(actor, container)
    if container.status not in ON_NODE:
        return container_start(actor=actor, container=container)
    container.desired = DesiredState.RUNNING
    _stop(container, StopReason.RESTART)
    container.save()
    _audit_if_admin(actor, container, "restart")
    emit(container)
    enqueue_on_commit(RECONCILE)
    return container


@transaction.atomic
def container_restart_service(*, actor: User, container: Container, service: str) -> Container:
    """Restart one service of a running container (its log goes on in the same file)."""
    container = _locked(actor, container)
    names = set(BUILTIN_SERVICES if container.ssh else BUILTIN_SERVICES[:1])
    names |= {s["name"] for s in container.started_spec.get("services", [])}
    if service not in names:
        raise _fail("service", _("No such service in the running container: %(s)s") % {"s": service}, code="not_found")
    if container.status != ContainerStatus.RUNNING:
        raise Conflict(_("The container is not running; start it instead."))
    if service not in container.restart_services:
        container.restart_services = [*container.restart_services, service]
        container.save(update_fields=["restart_services"])
    _audit_if_admin(actor, container, "restart_service", after={"service": service})
    enqueue_on_commit(RECONCILE)
    return container


@transaction.atomic
def container_delete(*, actor: User, container: Container) -> None:
    """Delete the container: its name is free at once; the launcher stops what still runs.
    Its logs stay in the log store."""
    container = _locked(actor, container)
    container.desired = DesiredState.DELETED
    container.deleted_at = timezone.now()
    _stop(container, StopReason.ADMIN if actor.pk != container.owner_id else StopReason.USER)
    if container.status not in ON_NODE:
        container.ssh_node_port = None
        container.services.update(node_port=None)
    container.save()
    _audit_if_admin(actor, container, "delete")
    emit(container)
    enqueue_on_commit(RECONCILE)
    enqueue_on_commit(SCHEDULE)


@transaction.atomic
def container_keep(*, actor: User, container: Container) -> Container:
    """ "Keep it": the owner answers an idle warning; the idle clock starts again from now."""
    container = _locked(actor, container)
    now = timezone.now()
    container.idle_warned_at = None
    container.kept_at = now
    container.last_activity_at = now
    if container.status_message and container.stop_reason == StopReason.NONE:
        container.status_message = ""
    container.save(update_fields=["idle_warned_at", "kept_at", "last_activity_at", "status_message"])
    emit(container)
    return container


@transaction.atomic
def group_policy_set(
    *,
    actor: User,
    node_group: NodeGroup,
    kind: str = GroupKind.SHARED,
    preemptible: bool = False,
    idle_reclaim: bool = True,
    idle_seconds: int = 4 * 3600,
    grace_seconds: int = 3600,
    gpu_util_threshold: int = 5,
) -> ContainerGroupPolicy:
    """Set how a node group hosts containers (cluster managers and ops). Audited."""
    if not actor.in_admin_group(AdminGroup.CLUSTER_MANAGER, AdminGroup.OPS):
        raise PermissionDenied(_("Only cluster managers and ops may change container settings."))
    if kind not in GroupKind.values:
        raise _fail("kind", _("The kind must be shared or dedicated."))
    if not 0 <= gpu_util_threshold <= 100:
        raise _fail("gpu_util_threshold", _("Give a percentage between 0 and 100."))
    policy, _created = ContainerGroupPolicy.objects.update_or_create(
        node_group=node_group,
        defaults={
            "kind": kind,
            "preemptible": preemptible,
            "idle_reclaim": idle_reclaim,
            "idle_seconds": idle_seconds,
            "grace_seconds": grace_seconds,
            "gpu_util_threshold": gpu_util_threshold,
        },
    )
    audit_record(
        actor=actor,
        action="container_policy.set",
        target=policy,
        target_repr=node_group.name,
        after={"kind": kind, "preemptible": preemptible, "idle_seconds": idle_seconds, "grace_seconds": grace_seconds},
    )
    enqueue_on_commit(SCHEDULE)
    return policy


# -- called by the scheduling pass and the launcher ---------------------------------------------


def started_spec(container: Container) -> dict[str, Any]:
    """What the launcher starts: the container's spec frozen at placement."""
    return {
        "cpu": container.cpu,
        "memory_gib": container.memory_gib,
        "gpus": container.gpus,
        "environment": container.environment.name if container.environment_id and container.environment else "",
        "image": container.environment.image if container.environment_id and container.environment else "",
        "ssh": container.ssh,
        "startup_script": container.startup_script,
        "services": [
            {"name": s.name, "port": s.port, "protocol": s.protocol, "command": s.command}
            for s in container.services.all()
        ],
    }


# Stored in English, translated when shown (``apps.containers.presentation``).
_UNPLACED_MESSAGES = {
    placement.NO_GROUP: gettext_noop("No node of the group is ready."),
    placement.TOO_BIG: gettext_noop("No node of the group is big enough for this container."),
    placement.FULL: gettext_noop("Every node of the group is in use; waiting for room."),
}


def containers_place(now: datetime | None = None) -> list[int]:
    """Place queued containers on nodes (the scheduling pass calls this before planning jobs).

    Loads the nodes, the nodes training jobs hold, the containers on nodes and the queue (five
    queries), calls the pure ``placement.place`` and applies each placement with a conditional
    update from ``queued`` (a container stopped meanwhile is not placed). Containers of a
    preemptible group on a node a training job took are stopped and queued again. Returns the
    ids placed."""
    now = now or timezone.now()
    held = set(Rank.objects.filter(holds_node=True).values_list("node_id", flat=True))
    rows = list(Node.objects.select_related("group").all())
    nodes = [
        placement.NodeCapacity(
            name=n.name,
            group=n.group.name,
            cpu=(n.allocatable_cpu_millis // 1000) if n.allocatable_cpu_millis else n.cpu,
            memory_bytes=n.allocatable_memory_bytes or n.memory_bytes,
            gpus=n.gpu_count,
            schedulable=n.state == NodeState.READY,
            held_by_job=n.pk in held,
        )
        for n in rows
    ]
    node_by_name = {n.name: n for n in rows}
    on_node = list(
        Container.objects.filter(status__in=ON_NODE, node__isnull=False).select_related("node", "node_group")
    )
    with transaction.atomic():
        for c in on_node:  # a training job took the node of a preemptible group's container
            if c.node_id in held and c.status != ContainerStatus.STOPPING:
                locked = Container.objects.select_for_update().filter(pk=c.pk, status=c.status).first()
                if locked is not None:
                    _stop(locked, StopReason.PREEMPTED, gettext_noop("A training job needed the node; queued again."))
                    locked.save()
                    emit(locked)
                    enqueue_on_commit(RECONCILE)
    placed = [
        placement.Placed(container_id=c.pk, node=c.node.name, cpu=c.cpu, memory_bytes=c.memory_bytes, gpus=c.gpus)
        for c in on_node
        if c.node is not None
    ]
    queued = list(
        Container.objects.filter(status=ContainerStatus.QUEUED, desired=DesiredState.RUNNING)
        .select_related("node_group", "node", "environment", "owner")
        .prefetch_related("services")
        .order_by("queued_at", "pk")
    )
    if not queued:
        return []
    kinds = dict(ContainerGroupPolicy.objects.values_list("node_group_id", "kind"))
    requests = [
        placement.Request(
            container_id=c.pk,
            group=c.node_group.name,
            cpu=c.cpu,
            memory_bytes=c.memory_bytes,
            gpus=c.gpus,
            dedicated=kinds.get(c.node_group_id) == GroupKind.DEDICATED,
            previous_node=c.node.name if c.node else "",
        )
        for c in queued
    ]
    result = placement.place(nodes, placed, requests)
    done: list[int] = []
    with transaction.atomic():
        for c in queued:
            target = result.placements.get(c.pk)
            if target is None:
                reason = result.unplaced.get(c.pk)
                message = _UNPLACED_MESSAGES.get(reason, "") if reason else ""
                if (
                    message
                    and c.status_message != message
                    and Container.objects.filter(pk=c.pk, status=ContainerStatus.QUEUED).update(status_message=message)
                ):
                    c.status_message = message
                    emit(c)
                continue
            node = node_by_name[target]
            spec = started_spec(c)
            if Container.objects.filter(pk=c.pk, status=ContainerStatus.QUEUED, desired=DesiredState.RUNNING).update(
                status=ContainerStatus.STARTING,
                node=node,
                run=F("run") + 1,
                started_spec=spec,
                status_message="",
                started_at=now,
                last_activity_at=now,
            ):
                c.refresh_from_db()
                emit(c)
                done.append(c.pk)
        if done:
            enqueue_on_commit(RECONCILE)
    return done


def _message(text: str) -> str:
    return text[:500]


@transaction.atomic
def container_observed(
    *,
    container_id: int,
    run: int,
    status: str,
    message: str = "",
    stop_reason: str | None = None,
) -> bool:
    """The launcher reports what it saw of run ``run`` (starting → running, → failed, stopping →
    stopped). A report about an older run, or a change that is not a move forward, is ignored.
    A container that stopped while its owner still wants it running is queued again."""
    c = (
        Container.objects.select_for_update(of=("self",))
        .select_related("node")
        .filter(pk=container_id, run=run)
        .first()
    )
    if c is None:
        return False
    allowed = {
        ContainerStatus.RUNNING: {ContainerStatus.STARTING},
        ContainerStatus.FAILED: {ContainerStatus.STARTING, ContainerStatus.RUNNING, ContainerStatus.STOPPING},
        ContainerStatus.STOPPED: {ContainerStatus.STOPPING, ContainerStatus.STARTING, ContainerStatus.RUNNING},
        ContainerStatus.STOPPING: {ContainerStatus.STARTING, ContainerStatus.RUNNING},
    }
    if c.status not in allowed.get(ContainerStatus(status), set()):
        return False
    now = timezone.now()
    c.status_message = _message(message)
    if stop_reason is not None:
        c.stop_reason = stop_reason
    if status == ContainerStatus.RUNNING:
        c.status = ContainerStatus.RUNNING
        c.last_activity_at = now
        c.gpu_utilisation = None  # a new run: its GPUs have not been read yet
        c.gpu_busy_at = None
    elif status == ContainerStatus.STOPPING:
        c.status = ContainerStatus.STOPPING
    else:
        c.status = status
        c.node = None if status == ContainerStatus.STOPPED else c.node
        c.stopped_at = now
        c.idle_warned_at = None
        c.restart_services = []
        if status == ContainerStatus.FAILED:
            c.node = None
            c.desired = DesiredState.STOPPED if c.desired != DesiredState.DELETED else c.desired
        if c.desired == DesiredState.RUNNING and status == ContainerStatus.STOPPED:
            _queue(c, now)
            if c.stop_reason == StopReason.PREEMPTED:
                c.status_message = _message(message or gettext_noop("A training job needed the node; queued again."))
        if c.desired == DesiredState.DELETED:
            c.ssh_node_port = None
            c.services.update(node_port=None)
    c.save()
    emit(c)
    enqueue_on_commit(SCHEDULE)
    return True


@transaction.atomic
def container_services_restarted(*, container_id: int, names: Iterable[str]) -> None:
    """The launcher restarted these services: drop them from the request list."""
    c = Container.objects.select_for_update().filter(pk=container_id).first()
    if c is not None:
        c.restart_services = [n for n in c.restart_services if n not in set(names)]
        c.save(update_fields=["restart_services"])


NODE_PORTS_EXHAUSTED = gettext_noop(
    "Every NodePort of the cluster's range for containers is taken; ask an admin to widen the range."
)


@transaction.atomic
def container_assign_node_ports(*, container_id: int) -> None:
    """Give the container's TCP services (SSH, custom TCP) NodePorts from
    ``ROTA_CONTAINERS['NODE_PORT_MIN'..'NODE_PORT_MAX']`` (Kubernetes backend; the launcher calls
    this before starting a run). A port, once given, stays the container's until it is deleted, so
    the SSH command does not change between runs. The count was checked against the owner's port
    quota at create and edit; the unique columns make two assignments of one port impossible."""
    from django.conf import settings

    c = Container.objects.select_for_update().filter(pk=container_id).first()
    if c is None:
        return
    services = list(c.services.filter(protocol=Protocol.TCP, node_port__isnull=True))
    if not services and (c.ssh_node_port or not c.ssh):
        return
    used = set(Container.objects.exclude(ssh_node_port=None).values_list("ssh_node_port", flat=True))
    used |= set(ContainerService.objects.exclude(node_port=None).values_list("node_port", flat=True))
    low, high = int(settings.ROTA_CONTAINERS["NODE_PORT_MIN"]), int(settings.ROTA_CONTAINERS["NODE_PORT_MAX"])
    free = (port for port in range(low, high + 1) if port not in used)
    try:
        if c.ssh and not c.ssh_node_port:
            c.ssh_node_port = next(free)
            c.save(update_fields=["ssh_node_port"])
        for service in services:
            service.node_port = next(free)
            service.save(update_fields=["node_port"])
    except StopIteration:
        # Stored on the container in English, translated when shown (``presentation``).
        raise ApplicationError(NODE_PORTS_EXHAUSTED, code="node_ports_exhausted", status=503) from None


# -- idle reclaim ---------------------------------------------------------------------------------


@transaction.atomic
def container_record_activity(*, container_id: int, run: int, last_activity: datetime) -> None:
    """The launcher read JupyterLab's activity API (kernels, terminals, requests): remember the
    newest activity of the current run."""
    Container.objects.filter(pk=container_id, run=run, status=ContainerStatus.RUNNING).filter(
        models.Q(last_activity_at__isnull=True) | models.Q(last_activity_at__lt=last_activity)
    ).update(last_activity_at=last_activity)


@transaction.atomic
def container_record_gpu_utilisation(*, container_id: int, run: int, percent: float | None, at: datetime) -> None:
    """The launcher read the GPU utilisation of the current run (``None``: it could not). Kept for
    the container's page; at or over the group's ``gpu_util_threshold``, or unknown, the GPUs
    count as busy at ``at`` (unknown never counts as idle). The run's first reading starts the
    GPUs' idle clock whatever it says."""
    c = (
        Container.objects.select_for_update()
        .filter(pk=container_id, run=run, status=ContainerStatus.RUNNING)
        .only("id", "node_group_id", "gpu_busy_at")
        .first()
    )
    if c is None:
        return
    policy = ContainerGroupPolicy.objects.filter(node_group_id=c.node_group_id).first()
    threshold = policy.gpu_util_threshold if policy else ContainerGroupPolicy().gpu_util_threshold
    updates: dict[str, Any] = {"gpu_utilisation": percent}
    if c.gpu_busy_at is None or ((percent is None or percent >= threshold) and c.gpu_busy_at < at):
        updates["gpu_busy_at"] = at
    Container.objects.filter(pk=c.pk).update(**updates)


def _idle_since(c: Container, now: datetime) -> datetime:
    """Since when the container has been idle: the newest of JupyterLab's last activity, the start,
    the queueing and the owner's "keep" — and, with GPUs, the last time they were busy or could not
    be measured (never measured in this run yet: not idle at all)."""
    since = max(t for t in (c.last_activity_at, c.started_at, c.kept_at, c.queued_at) if t is not None)
    if int((c.started_spec or {}).get("gpus") or 0) > 0:
        since = max(since, c.gpu_busy_at or now)
    return since


def containers_reclaim_idle(now: datetime | None = None) -> dict[str, list[int]]:
    """Warn, then stop, running containers idle past their group's settings.

    Idle since ``_idle_since``: JupyterLab's kernels, terminals and API quiet and, for a container
    with GPUs, every GPU under the group's ``gpu_util_threshold`` (measured by the backend; unknown
    counts as busy). Past ``idle_seconds`` the owner is warned (a notification and the container's
    page); past a further ``grace_seconds`` without a "keep", it is stopped with reason ``idle``.
    Groups whose policy turns reclaim off are left alone. Returns the ids warned and stopped."""
    now = now or timezone.now()
    done: dict[str, list[int]] = {"warned": [], "stopped": []}
    policies = {p.node_group_id: p for p in ContainerGroupPolicy.objects.all()}
    running = Container.objects.filter(status=ContainerStatus.RUNNING, desired=DesiredState.RUNNING).select_related(
        "owner"
    )
    for c in running:
        policy = policies.get(c.node_group_id) or ContainerGroupPolicy(node_group_id=c.node_group_id)
        if not policy.idle_reclaim:
            continue
        since = _idle_since(c, now)
        idle = (now - since).total_seconds()
        with transaction.atomic():
            locked = (
                Container.objects.select_for_update()
                .filter(pk=c.pk, run=c.run, status=ContainerStatus.RUNNING)
                .select_related("owner")
                .first()
            )
            if locked is None:
                continue
            if locked.idle_warned_at is None:
                if idle >= policy.idle_seconds:
                    locked.idle_warned_at = now
                    locked.save(update_fields=["idle_warned_at"])
                    notify(
                        recipient=locked.owner,
                        kind=NotificationKind.CONTAINER,
                        group_key=f"container-idle:{locked.pk}",
                        actor=None,
                        target_url=f"/containers/{locked.pk}/",
                        target_title=locked.name,
                    )
                    emit(locked)
                    done["warned"].append(locked.pk)
            elif since > locked.idle_warned_at:  # active again since the warning: no longer idle
                locked.idle_warned_at = None
                locked.save(update_fields=["idle_warned_at"])
                emit(locked)
            elif (now - locked.idle_warned_at).total_seconds() >= policy.grace_seconds:
                locked.desired = DesiredState.STOPPED
                _stop(locked, StopReason.IDLE, gettext_noop("Stopped as idle."))
                locked.save()
                emit(locked)
                enqueue_on_commit(RECONCILE)
                done["stopped"].append(locked.pk)
    return done
