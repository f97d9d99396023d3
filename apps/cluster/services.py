"""Admin writes to the cluster inventory. Every write is validated, audited, and in one transaction.

Node state changes also ask for a scheduling pass (nodes gained or lost capacity) and, for a node
that became unusable, let the launcher requeue the jobs on it (see ``apps.launcher.reconcile``).
They send a ``node.state`` event to the ``admins`` group after commit (``apps.cluster.events``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.choices import AdminGroup
from apps.accounts.models import User
from apps.cluster import templates
from apps.cluster.choices import ADMIN_STATES, MountAction, MountKind, NodeState
from apps.cluster.events import NodeStateChanged
from apps.cluster.models import Environment, MountRule, Node, NodeGroup
from apps.core import passes
from apps.core.audit import audit_record, snapshot
from apps.core.errors import ApplicationError, PermissionDenied
from apps.core.tasks import enqueue_on_commit
from portal.realtime import ADMINS_GROUP, send_event_on_commit

NODE_FIELDS = [
    "name",
    "group",
    "gpu_count",
    "gpu_model",
    "cpu",
    "memory_bytes",
    "room",
    "state",
    "state_reason",
    "labels",
]
STATE_FIELDS = ["state", "state_reason", "drain_deadline"]
ENV_FIELDS = ["name", "image", "description", "env_vars", "interpreter"]
MOUNT_FIELDS = ["name", "kind", "source", "container_path", "read_only", "action", "active", "conditions"]


def _require_cluster_admin(actor: User | None) -> None:
    if actor is not None and not actor.in_admin_group(AdminGroup.CLUSTER_MANAGER, AdminGroup.OPS):
        raise PermissionDenied(_("Only cluster managers and ops may change the cluster inventory."))


def _full_clean(instance: Any, exclude: list[str] | None = None) -> None:
    try:
        instance.full_clean(exclude=exclude, validate_unique=True)
    except ValidationError as exc:
        fields = {k: [str(m) for m in v] for k, v in exc.message_dict.items()}
        first_field, messages = next(iter(fields.items()))
        raise ApplicationError(f"{first_field}: {messages[0]}", fields=fields) from exc


def _node_capacity_changed() -> None:
    enqueue_on_commit(passes.SCHEDULE)
    enqueue_on_commit(passes.RECONCILE)


def _emit_node_state(node: Node, previous_state: str) -> None:
    send_event_on_commit(
        [ADMINS_GROUP],
        NodeStateChanged(
            node_id=node.pk,
            name=node.name,
            group=node.group.name,
            state=node.state,
            previous_state=previous_state,
            reason=node.state_reason,
        ),
    )


def _set_admin_state(
    *, actor: User, node: Node, state: str, reason: str, deadline: datetime | None, action: str
) -> None:
    """Move a locked node to an admin-chosen state: saved, audited with before/after, capacity
    re-planned and the change announced to admins (after commit)."""
    before = snapshot(node, STATE_FIELDS)
    node.state = state
    node.state_reason = reason[:255]
    node.drain_deadline = deadline
    node.state_changed_at = timezone.now()
    node.save(update_fields=["state", "state_reason", "drain_deadline", "state_changed_at"])
    audit_record(actor=actor, action=action, target=node, before=before, after=snapshot(node, STATE_FIELDS))
    _node_capacity_changed()
    _emit_node_state(node, before["state"])


def _locked(node: Node) -> Node:
    return Node.objects.select_for_update(of=("self",)).select_related("group").get(pk=node.pk)


@transaction.atomic
def node_group_upsert(*, actor: User | None, name: str, description: str = "") -> NodeGroup:
    _require_cluster_admin(actor)
    group = NodeGroup.objects.filter(name=name).first()
    before = snapshot(group, ["name", "description"]) if group else None
    if group is None:
        group = NodeGroup(name=name)
    group.description = description
    _full_clean(group)
    group.save()
    after = snapshot(group, ["name", "description"])
    if after != before:
        audit_record(actor=actor, action="node_group.upsert", target=group, before=before, after=after)
    return group


@transaction.atomic
def node_upsert(
    *,
    actor: User | None,
    name: str,
    group: NodeGroup,
    gpu_count: int = 0,
    gpu_model: str = "",
    cpu: int = 0,
    memory_bytes: int = 0,
    room: str = "",
    labels: dict[str, str] | None = None,
) -> Node:
    """Register a node or update its description (not its state: see enable/disable)."""
    _require_cluster_admin(actor)
    node = Node.objects.select_for_update().filter(name=name).first()
    before = snapshot(node, NODE_FIELDS) if node else None
    if node is None:
        node = Node(name=name, state=NodeState.READY)
    node.group = group
    node.gpu_count = gpu_count
    node.gpu_model = gpu_model
    node.cpu = cpu
    node.memory_bytes = memory_bytes
    node.room = room
    node.labels = dict(labels or {})
    _full_clean(node)
    node.save()
    after = snapshot(node, NODE_FIELDS)
    if after != before:
        audit_record(actor=actor, action="node.upsert", target=node, before=before, after=after)
        _node_capacity_changed()
    return node


@transaction.atomic
def node_disable(*, actor: User, node: Node, reason: str) -> Node:
    """Take a node out of scheduling. Jobs on it are requeued by the launcher."""
    _require_cluster_admin(actor)
    reason = reason.strip()
    if not reason:
        raise ApplicationError(
            _("Say why the node is disabled (it is shown to users)."), fields={"reason": [_("Required.")]}
        )
    node = _locked(node)
    _set_admin_state(
        actor=actor, node=node, state=NodeState.DISABLED, reason=reason, deadline=None, action="node.disable"
    )
    return node


@transaction.atomic
def node_drain(*, actor: User, node: Node, reason: str, deadline: datetime) -> Node:
    """Drain a node: it takes no new work at once; jobs on it may finish until ``deadline``, when the
    launcher suspends those still running (with the usual notice and grace) and the scheduler
    requeues them elsewhere. A drained node stays out of scheduling until enabled. Audited."""
    _require_cluster_admin(actor)
    reason = reason.strip()
    errors: dict[str, list[str]] = {}
    if not reason:
        errors["reason"] = [_("Say why the node is drained (it is shown to users).")]
    if deadline < timezone.now() - timedelta(minutes=1):
        errors["deadline"] = [_("The deadline is in the past; pick now or a later time.")]
    if errors:
        raise ApplicationError(next(iter(errors.values()))[0], fields=errors)
    node = _locked(node)
    if node.state == NodeState.DISABLED:
        raise ApplicationError(_("The node is disabled: its jobs were already requeued. Enable it first."))
    _set_admin_state(
        actor=actor, node=node, state=NodeState.DRAINING, reason=reason, deadline=deadline, action="node.drain"
    )
    return node


@transaction.atomic
def node_enable(*, actor: User, node: Node) -> Node:
    """Put a disabled or draining node back into scheduling (the backend may still report it not ready)."""
    _require_cluster_admin(actor)
    node = _locked(node)
    if node.state in ADMIN_STATES:
        _set_admin_state(actor=actor, node=node, state=NodeState.READY, reason="", deadline=None, action="node.enable")
    return node


def node_observe_readiness(*, name: str, ready: bool, reason: str = "", schedulable: bool = True) -> bool:
    """Record what the backend sees of a node: ready, cordoned (ready but not ``schedulable``) or not
    ready. Disabled and draining nodes keep the admin's state. True if it changed."""
    if not ready:
        target = NodeState.NOT_READY
    elif not schedulable:
        target = NodeState.CORDONED
    else:
        target = NodeState.READY
    with transaction.atomic():
        # Locked and re-checked (not a blind update) to know the state it leaves, for the event.
        node = (
            Node.objects.select_for_update(of=("self",))
            .select_related("group")
            .filter(name=name)
            .exclude(state__in=ADMIN_STATES)
            .exclude(state=target)
            .first()
        )
        if node is None:
            return False
        previous = node.state
        node.state = target
        node.state_reason = "" if target == NodeState.READY else (reason or target.label)[:255]
        node.state_changed_at = timezone.now()
        node.save(update_fields=["state", "state_reason", "state_changed_at"])
        _node_capacity_changed()
        _emit_node_state(node, previous)
    return True


def node_observe_allocatable(*, name: str, cpu: float | None, memory_bytes: int | None) -> bool:
    """Record a node's allocatable CPU and memory as the backend reports them (one conditional
    update: nothing is written while they stay the same). True if they changed."""
    cpu_millis = None if cpu is None else max(0, round(cpu * 1000))
    memory = None if memory_bytes is None else max(0, int(memory_bytes))
    changed = (
        Node.objects.filter(name=name)
        .exclude(allocatable_cpu_millis=cpu_millis, allocatable_memory_bytes=memory)
        .update(allocatable_cpu_millis=cpu_millis, allocatable_memory_bytes=memory)
    )
    return changed > 0


@transaction.atomic
def environment_upsert(
    *,
    actor: User | None,
    name: str,
    image: str,
    description: str = "",
    env_vars: dict[str, str] | None = None,
    interpreter: str = "python3",
) -> Environment:
    _require_cluster_admin(actor)
    env_vars = dict(env_vars or {})
    bad = [k for k, v in env_vars.items() if not isinstance(v, str) or not k.replace("_", "").isalnum()]
    if bad:
        raise ApplicationError(
            _('Environment variables must be NAME = "value" strings; check: %(names)s') % {"names": ", ".join(bad)},
            fields={"env_vars": [_("Invalid entries.")]},
        )
    environment = Environment.objects.filter(name=name).first()
    before = snapshot(environment, ENV_FIELDS) if environment else None
    if environment is None:
        environment = Environment(name=name)
    environment.image = image
    environment.description = description
    environment.env_vars = env_vars
    environment.interpreter = interpreter
    _full_clean(environment)
    environment.save()
    after = snapshot(environment, ENV_FIELDS)
    if after != before:
        audit_record(actor=actor, action="environment.upsert", target=environment, before=before, after=after)
    return environment


@transaction.atomic
def mount_rule_upsert(
    *,
    actor: User | None,
    name: str,
    source: str,
    container_path: str,
    kind: str = MountKind.HOST_PATH,
    read_only: bool = False,
    action: str = MountAction.ADD,
    active: bool = True,
    owner_users: list[User] | None = None,
    owner_groups: list[Group] | None = None,
    conditions: dict[str, Any] | None = None,
) -> MountRule:
    """Create or update a mount rule; templates and conditions are validated before saving."""
    _require_cluster_admin(actor)
    problems: dict[str, list[str]] = {}
    for field, value in (("source", source), ("container_path", container_path)):
        found = templates.validate_template(value)
        if found:
            problems[field] = found
    if not container_path.startswith("/"):
        problems.setdefault("container_path", []).append("must be an absolute path")
    if kind == MountKind.HOST_PATH and not source.startswith("/"):
        problems.setdefault("source", []).append("a host path must be absolute")
    if kind not in MountKind.values:
        problems["kind"] = [f"must be one of {', '.join(MountKind.values)}"]
    if action not in MountAction.values:
        problems["action"] = ["must be add or remove"]
    cond_problems = templates.validate_conditions(conditions or {})
    if cond_problems:
        problems["conditions"] = cond_problems
    if problems:
        field, messages = next(iter(problems.items()))
        raise ApplicationError(f"{field}: {messages[0]}", fields=problems)
    rule = MountRule.objects.filter(name=name).first()
    before = None
    if rule is not None:
        before = snapshot(rule, MOUNT_FIELDS)
        before["owners"] = sorted(
            [f"user:{u}" for u in rule.owner_users.all()] + [f"group:{g}" for g in rule.owner_groups.all()]
        )
    else:
        rule = MountRule(name=name)
    rule.kind = kind
    rule.source = source
    rule.container_path = container_path
    rule.read_only = read_only
    rule.action = action
    rule.active = active
    rule.conditions = dict(conditions or {})
    _full_clean(rule)
    rule.save()
    rule.owner_users.set(owner_users or [])
    rule.owner_groups.set(owner_groups or [])
    after = snapshot(rule, MOUNT_FIELDS)
    after["owners"] = sorted([f"user:{u}" for u in owner_users or []] + [f"group:{g}" for g in owner_groups or []])
    if after != before:
        audit_record(actor=actor, action="mount_rule.upsert", target=rule, before=before, after=after)
    return rule
