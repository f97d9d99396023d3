"""Admin writes that span several apps, composed from the apps' own services.

Each function runs in one transaction and leaves exactly one audit entry per admin write: the
app service it calls records it (``user.create``, ``user.update``, ``token.issue`` …) or, for the
job actions the experiments app does not audit itself, this module does (``job.<action>``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts import services as account_services
from apps.accounts.choices import AdminGroup
from apps.accounts.models import User
from apps.accounts.services import IssuedToken
from apps.cluster.models import Environment, NodeGroup
from apps.core.audit import audit_record
from apps.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from apps.core.priorities import QUOTA_LEVELS, Priority, parse_priority
from apps.experiments import lifecycle
from apps.experiments import services as experiment_services
from apps.experiments.models import Attempt, Chain
from apps.quotas import services as quota_services
from apps.quotas.choices import PER_GROUP, QuotaKind
from apps.quotas.models import Quota
from apps.web import services as web_services
from apps.web.models import Notice

INITIAL_TOKEN_NAME = "initial"  # noqa: S105  (a label, not a secret)


class JobsOnDeactivate:
    """What happens to a user's unfinished jobs when they are deactivated."""

    SUSPEND = "suspend"  # held: they keep their place in the chain and wait for resume
    STOP = "stop"
    CHOICES = (SUSPEND, STOP)


@dataclass(frozen=True)
class CreatedUser:
    user: User
    token: IssuedToken | None  # its raw secret is shown once, on the page that created it


@transaction.atomic
def user_create_with_token(
    *,
    actor: User,
    username: str,
    role: str,
    nickname: str = "",
    email: str = "",
    team: str | None = None,
    groups: list[str] | None = None,
    posix_uid: int | None = None,
    posix_gid: int | None = None,
    issue_token: bool = True,
) -> CreatedUser:
    """Create a user and, unless told not to, their first API token (root only).

    Two audit entries: ``user.create`` and ``token.issue``. Nothing is written if either fails.
    """
    user = account_services.user_create(
        actor=actor,
        username=username,
        role=role,
        nickname=nickname,
        email=email,
        team=team,
        groups=groups,
        posix_uid=posix_uid,
        posix_gid=posix_gid,
    )
    issued = account_services.token_create(actor=actor, user=user, name=INITIAL_TOKEN_NAME) if issue_token else None
    return CreatedUser(user=user, token=issued)


@dataclass
class ActivationResult:
    user: User
    changed: bool
    jobs: list[int] = field(default_factory=list)  # chains stopped or suspended


@transaction.atomic
def user_set_active(*, actor: User, user: User, active: bool, jobs: str = JobsOnDeactivate.SUSPEND) -> ActivationResult:
    """Activate or deactivate a user (root only). Deactivating stops or suspends every unfinished
    job of theirs (``jobs``), as the admin chose; their open sockets close on their next check.

    One audit entry (``user.update``, ``is_active`` before/after), whose note lists the jobs.
    """
    if not actor.in_admin_group():
        raise PermissionDenied(_("Only root admins may manage users."))
    if jobs not in JobsOnDeactivate.CHOICES:
        message = _("Choose whether their jobs are suspended or stopped.")
        raise ApplicationError(message, fields={"jobs": [message]})
    if not active and user.pk == actor.pk:
        raise Conflict(_("You cannot deactivate your own account."))
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.is_active == active:
        return ActivationResult(user=user, changed=False)
    touched: list[int] = []
    if not active:
        for chain in Chain.objects.filter(owner=user, finished=False).order_by("id"):
            try:
                if jobs == JobsOnDeactivate.STOP:
                    experiment_services.experiment_stop(actor=actor, chain=chain)
                else:
                    experiment_services.experiment_suspend(actor=actor, chain=chain)
            except Conflict:
                continue  # already stopping, already held …: nothing left to do for this one
            touched.append(chain.pk)
    note = ""
    if touched:
        verb = "stopped" if jobs == JobsOnDeactivate.STOP else "suspended"
        note = f"jobs {verb}: " + ", ".join(f"#{pk}" for pk in touched)
    user = account_services.user_update(actor=actor, user=user, is_active=active, audit_note=note)
    return ActivationResult(user=user, changed=True, jobs=touched)


JOB_ACTIONS = ("stop", "suspend", "resume")


@transaction.atomic
def job_admin_action(*, actor: User, chain: Chain, action: str) -> Chain:
    """Stop, suspend or resume anybody's job as an admin (ops, task admins, root). Audited with the
    job's status before and after."""
    if not actor.is_platform_admin:
        raise PermissionDenied(_("Only ops, task admins and root may act on other people's jobs."))
    if action not in JOB_ACTIONS:
        raise ApplicationError(_("Unknown action %(a)s.") % {"a": action})
    chain = Chain.objects.filter(pk=chain.pk).first() or _missing()
    before = {"status": chain.status, "held": chain.held}
    if action == "stop":
        chain = experiment_services.experiment_stop(actor=actor, chain=chain)
    elif action == "suspend":
        chain = experiment_services.experiment_suspend(actor=actor, chain=chain)
    else:
        chain = experiment_services.experiment_resume(actor=actor, chain=chain)
    audit_record(
        actor=actor,
        action=f"job.{action}",
        target=chain,
        before=before,
        after={"status": chain.status, "held": chain.held},
        note=f"owner {chain.owner.username}",
    )
    return chain


def _missing() -> Chain:
    raise NotFound(_("No such job."))


MAX_QUOTA = 1_000_000
QUOTA_LEVEL_VALUES = frozenset(int(p) for p in QUOTA_LEVELS)
CONTAINER_KIND_VALUES = frozenset(str(k) for k in PER_GROUP)


@transaction.atomic
def quota_grid_save(*, actor: User, subject: User | Group, values: dict[str, str]) -> int:
    """Apply the edited cells of a quota grid (``monitor.selectors.quota_grid``) for one user or
    group: a number sets the subject's own row, a blank removes it (a user then falls back to their
    groups). Every value is checked first; one bad cell writes nothing. Each changed cell is one
    ``quota.set`` / ``quota.delete`` audit entry and asks for a scheduling pass, so it takes effect
    at the next one. Returns how many cells changed."""
    if not actor.in_admin_group(AdminGroup.QUOTA_EDITOR):
        raise PermissionDenied(_("Only root admins and quota editors may change quotas."))
    is_user = isinstance(subject, User)
    own = {
        quota_cell_key_of(q): q
        for q in Quota.objects.filter(**({"user": subject} if is_user else {"group": subject})).select_related(
            "node_group", "environment"
        )
    }
    node_groups = {str(g.pk): g for g in NodeGroup.objects.all()}
    environments = {str(e.pk): e for e in Environment.objects.all()}
    errors: dict[str, list[str]] = {}
    plan: list[tuple[str, dict[str, Any], int | None]] = []
    for key, raw in values.items():
        parts = key.split(":")
        kind = parts[0]
        target: dict[str, Any] = {"kind": kind}
        if kind == QuotaKind.ENVIRONMENT and len(parts) == 2 and parts[1] in environments:
            target["environment"] = environments[parts[1]]
        elif kind in (QuotaKind.NODE, QuotaKind.NODE_LIMIT) and len(parts) == 3 and parts[1] in node_groups:
            try:
                level = int(parts[2])
            except ValueError:
                level = None
            if level not in QUOTA_LEVEL_VALUES:
                errors[key] = [_("Unknown priority level.")]
                continue
            target.update(node_group=node_groups[parts[1]], priority=level)
        elif kind in CONTAINER_KIND_VALUES and len(parts) == 2 and parts[1] in node_groups:
            target["node_group"] = node_groups[parts[1]]
        else:
            errors[key] = [_("Unknown quota cell; reload the page.")]
            continue
        text = (raw or "").strip()
        if text == "":
            plan.append((key, target, None))
            continue
        if not text.isdigit() or int(text) > MAX_QUOTA:
            errors[key] = [_("A whole number from 0 to %(n)d, or blank to inherit.") % {"n": MAX_QUOTA}]
            continue
        plan.append((key, target, int(text)))
    if errors:
        raise ApplicationError(_("Some values are not valid; nothing was saved."), fields=errors)
    changed = 0
    subject_kw: dict[str, Any] = {"user": subject} if is_user else {"group": subject}
    for key, target, value in plan:
        existing = own.get(key)
        if value is None:
            if existing is not None:
                quota_services.quota_delete(actor=actor, quota=existing)
                changed += 1
        elif existing is None or existing.value != value or existing.expires_at is not None:
            quota_services.quota_set(actor=actor, value=value, **subject_kw, **target)
            changed += 1
    return changed


def quota_cell_key_of(quota: Quota) -> str:
    if quota.kind == QuotaKind.ENVIRONMENT:
        return f"{quota.kind}:{quota.environment_id}"
    if quota.kind in (QuotaKind.NODE, QuotaKind.NODE_LIMIT):
        return f"{quota.kind}:{quota.node_group_id}:{quota.priority}"
    return f"{quota.kind}:{quota.node_group_id}"


@transaction.atomic
def notice_expire(*, actor: User, notice: Notice) -> Notice:
    """Stop showing a notice now (root): its end becomes this moment. Audited as a change of the
    notice (``notice.update``, before/after) by ``apps.web.services.notice_save``."""
    if not actor.in_admin_group():
        raise PermissionDenied(_("Only root admins may publish notices."))
    notice = Notice.objects.select_for_update().filter(pk=notice.pk).first() or _no_notice()
    now = timezone.now()
    if notice.starts_at >= now:
        raise Conflict(_("This notice is not shown yet: change its dates or delete it."))
    if notice.expires_at is not None and notice.expires_at <= now:
        raise Conflict(_("This notice has already expired."))
    notice.expires_at = now
    return web_services.notice_save(actor=actor, notice=notice)


def _no_notice() -> Notice:
    raise NotFound(_("No such notice."))


@transaction.atomic
def job_admin_set_priority(*, actor: User, chain: Chain, priority: int | str) -> Chain:
    """Change anybody's job's requested priority as an admin (ops, task admins, root), with the
    scheduler's rules: a level where its owner's quota could never start it is refused, and the
    job's priority changes at most once every 10 s (``experiment_set_priority``). The waiting
    attempt takes the new level at the next pass; a running one keeps the level it was admitted at.
    The owner's pages are told (``chain.status``). Audited with the priority before and after."""
    if not actor.is_platform_admin:
        raise PermissionDenied(_("Only ops, task admins and root may act on other people's jobs."))
    chain = Chain.objects.select_related("owner", "node_group").filter(pk=chain.pk).first() or _missing()
    try:
        level = int(parse_priority(priority))
    except ValueError as exc:
        raise ApplicationError(str(exc), fields={"priority": [str(exc)]}) from exc
    if level == chain.priority:
        raise Conflict(_("This job already asks for %(p)s.") % {"p": Priority(level).label})
    experiment_services.experiment_require_feasible(chain=chain, node_group=chain.node_group, priority=level)
    before = {"priority": Priority(chain.priority).label}
    chain = experiment_services.experiment_set_priority(user=actor, chain=chain, priority=level)
    if chain.latest_attempt_id is not None:
        lifecycle.emit_chain_status(chain=chain, attempt=Attempt.objects.get(pk=chain.latest_attempt_id))
    audit_record(
        actor=actor,
        action="job.priority",
        target=chain,
        before=before,
        after={"priority": Priority(chain.priority).label},
        note=f"owner {chain.owner.username}",
    )
    return chain


@transaction.atomic
def job_admin_move_group(*, actor: User, chain: Chain, group: str) -> Chain:
    """Move anybody's waiting job to another node group as an admin (ops, task admins, root);
    ``experiment_move_group`` holds the rules. Audited with the node group before and after."""
    if not actor.is_platform_admin:
        raise PermissionDenied(_("Only ops, task admins and root may act on other people's jobs."))
    chain = Chain.objects.select_related("owner", "node_group").filter(pk=chain.pk).first() or _missing()
    before = {"node_group": chain.node_group.name}
    chain = experiment_services.experiment_move_group(actor=actor, chain=chain, group=group)
    audit_record(
        actor=actor,
        action="job.move",
        target=chain,
        before=before,
        after={"node_group": chain.node_group.name},
        note=f"owner {chain.owner.username}",
    )
    return chain
