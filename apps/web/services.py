"""Writes of the portal: preferences, notices, and batch actions on jobs of the list page."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.core.audit import audit_record, snapshot
from apps.core.errors import ApplicationError, PermissionDenied
from apps.experiments import services as experiment_services
from apps.experiments.models import Chain
from apps.experiments.selectors import chains_visible_to
from apps.notifications.choices import NotificationKind
from apps.notifications.services import notify_many
from apps.web.choices import NoticeAudience, Theme
from apps.web.models import Notice, UserPreference

NOTICE_AUDIT_FIELDS = ["title", "body", "severity", "audience", "group", "user", "starts_at", "expires_at"]


def preference_set(*, user: User, language: str | None = None, theme: str | None = None) -> UserPreference:
    """Remember the user's language and/or theme (``None`` leaves a setting as it is)."""
    values: dict[str, str] = {}
    if language is not None:
        if language and language not in dict(settings.LANGUAGES):
            raise ApplicationError(_("Unknown language."), fields={"language": [_("Unknown language.")]})
        values["language"] = language
    if theme is not None:
        if theme not in Theme.values:
            raise ApplicationError(_("Unknown theme."), fields={"theme": [_("Unknown theme.")]})
        values["theme"] = theme
    preference, _created = UserPreference.objects.update_or_create(user=user, defaults=values)
    return preference


@transaction.atomic
def notice_save(*, actor: User, notice: Notice) -> Notice:
    """Create or change a notice (platform admins). Validated; recorded in the audit log."""
    if not actor.in_admin_group():
        raise PermissionDenied(_("Only root admins may publish notices."))
    notice.full_clean()
    before = None
    if notice.pk is not None:
        old = Notice.objects.filter(pk=notice.pk).first()
        before = snapshot(old, NOTICE_AUDIT_FIELDS) if old is not None else None
    if notice.created_by_id is None:
        notice.created_by = actor
    notice.save()
    audit_record(
        actor=actor,
        action="notice.update" if before is not None else "notice.create",
        target=notice,
        before=before,
        after=snapshot(notice, NOTICE_AUDIT_FIELDS),
    )
    if before is None and notice.starts_at <= timezone.now():
        notice_notify(notice=notice)
    return notice


def notice_notify(*, notice: Notice) -> int:
    """Put a new notice among its audience's notifications (the dashboard shows it as well)."""
    people = User.objects.filter(is_active=True)
    if notice.audience == NoticeAudience.GROUP:
        people = people.filter(Q(groups=notice.group_id) | Q(team=notice.group_id)).distinct()
    elif notice.audience == NoticeAudience.USER:
        people = people.filter(pk=notice.user_id or 0)
    return notify_many(
        recipients=people,
        kind=NotificationKind.NOTICE,
        group_key=f"notice:{notice.pk}",
        target_url=reverse("web:dashboard"),
        target_title=notice.title,
        detail=notice.body,
    )


@transaction.atomic
def notice_delete(*, actor: User, notice: Notice) -> None:
    if not actor.in_admin_group():
        raise PermissionDenied(_("Only root admins may delete notices."))
    audit_record(actor=actor, action="notice.delete", target=notice, before=snapshot(notice, NOTICE_AUDIT_FIELDS))
    notice.delete()


def chain_move_to_front(*, user: User, chain: Chain) -> Chain:
    """Put a waiting job first among the owner's own waiting jobs (HAI's "move to first").

    The scheduler orders a user's jobs of equal priority by custom rank, which defaults to the
    submission time; this gives the job a rank just below the lowest of the others. Subject to the
    same permission check and rate limit as any priority change."""
    others = (
        Chain.objects.filter(owner_id=chain.owner_id, finished=False)
        .exclude(pk=chain.pk)
        .values_list("custom_rank", "created_at")
    )
    ranks = [rank if rank is not None else created.timestamp() for rank, created in others]
    own = chain.custom_rank if chain.custom_rank is not None else chain.created_at.timestamp()
    front = min([own, *ranks]) - 1.0
    return experiment_services.experiment_set_priority(user=user, chain=chain, custom_rank=front)


@dataclass
class BatchResult:
    done: list[Chain] = field(default_factory=list)
    failed: list[tuple[Chain, str]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)


def batch_apply(*, user: User, chain_ids: list[int], action: str, tag: str = "") -> BatchResult:
    """Apply one action to several jobs. Each job is its own transaction: one refusal (already
    finished, not yours) does not undo the others; the result says what happened to each.

    Jobs the user cannot see are reported as missing, exactly like ids that do not exist."""
    result = BatchResult()
    chains = {c.pk: c for c in chains_visible_to(user=user).filter(pk__in=chain_ids).select_related("owner")}
    for chain_id in chain_ids:
        chain = chains.get(chain_id)
        if chain is None:
            result.missing.append(chain_id)
            continue
        try:
            if action == "stop":
                experiment_services.experiment_stop(actor=user, chain=chain)
            elif action == "suspend":
                experiment_services.experiment_suspend(actor=user, chain=chain)
            elif action == "resume":
                experiment_services.experiment_resume(actor=user, chain=chain)
            elif action == "tag":
                experiment_services.experiment_tag(user=user, chain=chain, tag=tag)
            elif action == "untag":
                experiment_services.experiment_untag(user=user, chain=chain, tag=tag)
            else:
                raise ApplicationError(_("Unknown action."))
        except ApplicationError as exc:
            result.failed.append((chain, exc.message))
        else:
            result.done.append(chain)
    return result
