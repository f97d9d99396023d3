"""Writing notifications: ``notify`` (aggregating while unread), marking read, preferences.

Callers (the forum's services) call ``notify`` inside their own transaction; the recipient's
badge is updated over ``user.<id>`` after commit (``NotificationCreated`` with the unread count).
Nobody is told about their own doing, nor about a kind they muted, nor while deactivated.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from apps.accounts.models import User
from apps.core.events import NotificationCreated
from apps.notifications import presentation
from apps.notifications.choices import NotificationKind
from apps.notifications.events import NotificationsRead
from apps.notifications.models import Notification, NotificationMute
from portal.realtime import send_event_on_commit, user_group

MAX_NAMES = 20  # names kept per aggregated row (the count keeps counting)


def unread_count(*, user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, read_at__isnull=True).count()


def _merge(row: Notification, actor: User | None) -> None:
    row.count += 1
    if actor is not None and actor.pk not in row.actor_ids:
        row.actor_ids = [*row.actor_ids, actor.pk][-MAX_NAMES:]
        row.actor_names = [*row.actor_names, actor.display_name][-MAX_NAMES:]
    row.save(update_fields=["count", "actor_ids", "actor_names", "updated_at"])


@transaction.atomic
def notify(
    *,
    recipient: User,
    kind: NotificationKind,
    group_key: str,
    actor: User | None,
    target_url: str = "",
    target_title: str = "",
    detail: str = "",
) -> Notification | None:
    """Tell ``recipient`` about an event, merged into their unread row of ``group_key`` if any.

    Returns the row, or None when nothing is sent (own action, muted kind, inactive recipient)."""
    if actor is not None and actor.pk == recipient.pk:
        return None
    if not recipient.is_active or NotificationMute.objects.filter(user=recipient, kind=kind).exists():
        return None
    unread = Notification.objects.select_for_update().filter(recipient=recipient, group_key=group_key, read_at=None)
    row = unread.first()
    if row is None:
        try:
            with transaction.atomic():
                row = Notification.objects.create(
                    recipient=recipient,
                    kind=kind,
                    group_key=group_key,
                    target_url=target_url,
                    target_title=target_title[:200],
                    detail=detail[:500],
                    actor_ids=[actor.pk] if actor else [],
                    actor_names=[actor.display_name] if actor else [],
                )
        except IntegrityError:
            row = unread.get()  # the same key's other event created it a moment ago
            _merge(row, actor)
    else:
        _merge(row, actor)
    event = NotificationCreated(
        notification_id=row.pk,
        user_id=recipient.pk,
        kind=str(kind),
        title=presentation.describe(row),
        url=row.target_url,
        unread_count=unread_count(user_id=recipient.pk),
    )
    send_event_on_commit([user_group(recipient.pk)], event)
    return row


@transaction.atomic
def notifications_mark_read(*, user: User, ids: Iterable[int] | None = None) -> int:
    """Mark ``user``'s unread notifications read (only theirs: ids of others match nothing)."""
    rows = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    changed = rows.update(read_at=timezone.now())
    if changed:
        send_event_on_commit(
            [user_group(user.pk)], NotificationsRead(user_id=user.pk, unread_count=unread_count(user_id=user.pk))
        )
    return changed


@transaction.atomic
def preferences_set(*, user: User, enabled: Iterable[str]) -> None:
    """Receive exactly the ``enabled`` kinds; mute the others."""
    wanted = {NotificationKind(kind) for kind in enabled if kind in NotificationKind.values}
    muted = [kind for kind in NotificationKind if kind not in wanted]
    NotificationMute.objects.filter(user=user).exclude(kind__in=muted).delete()
    for kind in muted:
        NotificationMute.objects.get_or_create(user=user, kind=kind)


@transaction.atomic
def notify_many(
    *,
    recipients: Iterable[User],
    kind: NotificationKind,
    group_key: str,
    target_url: str = "",
    target_title: str = "",
    detail: str = "",
) -> int:
    """One new notification (no actor) for each active recipient who did not mute ``kind``, in one
    insert (an admin's notice to everyone); each badge is updated after commit. Returns how many."""
    people = {user.pk: user for user in recipients if user.is_active}
    muted = set(NotificationMute.objects.filter(user_id__in=list(people), kind=kind).values_list("user_id", flat=True))
    rows = Notification.objects.bulk_create(
        [
            Notification(
                recipient_id=pk,
                kind=kind,
                group_key=group_key,
                target_url=target_url,
                target_title=target_title[:200],
                detail=detail[:500],
            )
            for pk in people
            if pk not in muted
        ]
    )
    counts = dict(
        Notification.objects.filter(recipient_id__in=[r.recipient_id for r in rows], read_at__isnull=True)
        .values_list("recipient_id")
        .annotate(n=Count("id"))
        .values_list("recipient_id", "n")
    )
    for row in rows:
        event = NotificationCreated(
            notification_id=row.pk or 0,
            user_id=row.recipient_id,
            kind=str(kind),
            title=row.target_title,
            url=row.target_url,
            unread_count=counts.get(row.recipient_id, 1),
        )
        send_event_on_commit([user_group(row.recipient_id)], event)
    return len(rows)
