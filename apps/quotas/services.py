"""Quota writes: admins only (root or ``quota_editor``), validated and audited.

HAI let users raise their own training quota; here no path but these services writes a quota.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.translation import gettext as _

from apps.accounts.choices import AdminGroup
from apps.accounts.models import User
from apps.cluster.models import Environment, NodeGroup
from apps.core import passes
from apps.core.audit import audit_record
from apps.core.errors import ApplicationError, PermissionDenied
from apps.core.priorities import Priority
from apps.core.tasks import enqueue_on_commit
from apps.quotas.choices import PER_GROUP, PER_GROUP_AND_PRIORITY, QuotaKind
from apps.quotas.models import Quota


def _require_quota_admin(actor: User | None) -> None:
    if actor is not None and not actor.in_admin_group(AdminGroup.QUOTA_EDITOR):
        raise PermissionDenied(_("Only root admins and quota editors may change quotas."))


def _validate(
    kind: str, node_group: NodeGroup | None, priority: int | None, environment: Environment | None, value: int
) -> None:
    fields: dict[str, list[str]] = {}
    if kind not in QuotaKind.values:
        fields["kind"] = [_("Unknown quota kind; use one of: %(k)s") % {"k": ", ".join(QuotaKind.values)}]
    if (kind in PER_GROUP_AND_PRIORITY or kind in PER_GROUP) and node_group is None:
        fields["node_group"] = [_("This kind of quota needs a node group.")]
    bad_level = priority is None or priority == Priority.AUTO or priority not in Priority.values
    if kind in PER_GROUP_AND_PRIORITY and bad_level:
        fields["priority"] = [_("Give a priority level (LOW … EXTREME_HIGH), not AUTO.")]
    if kind == QuotaKind.ENVIRONMENT and environment is None:
        fields["environment"] = [_("An environment quota needs an environment.")]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        fields["value"] = [_("The value must be a whole number ≥ 0.")]
    if fields:
        name, messages = next(iter(fields.items()))
        raise ApplicationError(f"{name}: {messages[0]}", fields=fields)


@transaction.atomic
def quota_set(
    *,
    actor: User | None,
    user: User | None = None,
    group: Group | None = None,
    kind: str,
    node_group: NodeGroup | None = None,
    priority: int | None = None,
    environment: Environment | None = None,
    value: int,
    expires_at: datetime | None = None,
) -> Quota:
    """Create or update one quota row for a user or a group. Audited; triggers a scheduling pass."""
    _require_quota_admin(actor)
    if (user is None) == (group is None):
        raise ApplicationError(
            _("A quota belongs to exactly one user or one group."), fields={"subject": [_("Required.")]}
        )
    _validate(kind, node_group, priority, environment, value)
    if kind not in PER_GROUP_AND_PRIORITY:
        priority = None
    if kind not in PER_GROUP_AND_PRIORITY and kind not in PER_GROUP:
        node_group = None
    if kind != QuotaKind.ENVIRONMENT:
        environment = None
    resource = Quota.make_resource(
        kind, node_group.name if node_group else None, priority, environment.name if environment else None
    )
    existing = Quota.objects.select_for_update().filter(user=user, group=group, resource=resource).first()
    before = (
        {"value": existing.value, "expires_at": existing.expires_at.isoformat() if existing.expires_at else None}
        if existing
        else None
    )
    quota = existing or Quota(
        user=user,
        group=group,
        kind=kind,
        node_group=node_group,
        priority=priority,
        environment=environment,
        resource=resource,
    )
    quota.value = value
    quota.expires_at = expires_at
    quota.save()
    after = {"value": value, "expires_at": expires_at.isoformat() if expires_at else None}
    if after != before:
        audit_record(
            actor=actor,
            action="quota.set",
            target=quota,
            target_repr=f"{quota.subject_label} {resource}",
            before=before,
            after=after,
        )
        enqueue_on_commit(passes.SCHEDULE)
    return quota


@transaction.atomic
def quota_delete(*, actor: User | None, quota: Quota) -> None:
    """Remove a quota row (the subject falls back to group rows). Audited."""
    _require_quota_admin(actor)
    audit_record(
        actor=actor,
        action="quota.delete",
        target=quota,
        target_repr=f"{quota.subject_label} {quota.resource}",
        before={"value": quota.value},
        after=None,
    )
    quota.delete()
    enqueue_on_commit(passes.SCHEDULE)
