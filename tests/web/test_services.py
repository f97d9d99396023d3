"""The portal's own services and selectors: notices, preferences, batch actions, moving to the front."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.errors import ApplicationError, PermissionDenied
from apps.core.models import AuditEntry
from apps.experiments.choices import ChainStatus
from apps.web import selectors, services
from apps.web.models import Notice, UserPreference
from tests.factories import GroupFactory


def test_notice_save_is_for_root_admins_and_audited(user, admin_user):
    notice = Notice(title="Maintenance", severity="warning")
    with pytest.raises(PermissionDenied):
        services.notice_save(actor=user, notice=notice)
    assert not Notice.objects.exists() and not AuditEntry.objects.exists()
    saved = services.notice_save(actor=admin_user, notice=notice)
    assert saved.created_by == admin_user
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_name, entry.after["title"]) == ("notice.create", "root-admin", "Maintenance")
    services.notice_delete(actor=admin_user, notice=saved)
    assert not Notice.objects.exists()
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "notice.create",
        "notice.delete",
    ]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"audience": "group"}, "group"),
        ({"audience": "user"}, "user"),
        ({"audience": "all", "expires_at_offset": -1}, "expires_at"),
    ],
)
def test_notice_audience_and_dates_are_validated(admin_user, values, field):
    offset = values.pop("expires_at_offset", None)
    notice = Notice(title="x", **values)
    if offset is not None:
        notice.expires_at = notice.starts_at + timedelta(hours=offset)
    with pytest.raises(ValidationError) as raised:
        services.notice_save(actor=admin_user, notice=notice)
    assert field in raised.value.message_dict
    assert not Notice.objects.exists()


def test_notice_constraints_hold_in_the_database(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        Notice.objects.create(title="x", audience="all", user=user)


def test_notices_reach_their_audience(user, other_user):
    team = GroupFactory(name="vision")
    user.team = team
    user.save()
    Notice.objects.create(title="team", audience="group", group=team)
    Notice.objects.create(title="bob", audience="user", user=other_user)
    Notice.objects.create(
        title="gone", expires_at=timezone.now() - timedelta(seconds=1), starts_at=timezone.now() - timedelta(days=1)
    )
    assert [n.title for n in selectors.notices_for(user=user)] == ["team"]
    assert [n.title for n in selectors.notices_for(user=other_user)] == ["bob"]


def test_preferences(user):
    assert selectors.preference_of(user=user).pk is None
    services.preference_set(user=user, language="zh-hans")
    services.preference_set(user=user, theme="dark")
    assert UserPreference.objects.get(user=user).language == "zh-hans"
    assert UserPreference.objects.get(user=user).theme == "dark"
    with pytest.raises(ApplicationError):
        services.preference_set(user=user, language="klingon")
    with pytest.raises(ApplicationError):
        services.preference_set(user=user, theme="neon")


def test_batch_apply_reports_each_job(cluster, submit, user, other_user):
    mine = submit(user, name="mine")
    theirs = submit(other_user, name="theirs")
    result = services.batch_apply(user=user, chain_ids=[mine.pk, theirs.pk, 999999], action="suspend")
    assert [c.pk for c in result.done] == [mine.pk]
    assert result.missing == [theirs.pk, 999999]
    theirs.refresh_from_db()
    assert theirs.status == ChainStatus.STARTING
    again = services.batch_apply(user=user, chain_ids=[mine.pk], action="resume")
    assert again.done == [] and "only a suspended or stopped job can be resumed" in again.failed[0][1]


def test_free_chain_name(cluster, submit, user):
    assert selectors.free_chain_name(user=user, name="run") == "run"
    submit(user, name="run")
    submit(user, name="run-2")
    assert selectors.free_chain_name(user=user, name="run") == "run-3"
