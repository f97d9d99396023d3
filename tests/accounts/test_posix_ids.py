"""POSIX uid/gid: set by root admins (API, Django admin), validated, unique uid, shown in the profile."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.test import Client

from apps.accounts import services
from apps.accounts.models import POSIX_ID_MAX, User
from apps.core.errors import ApplicationError, PermissionDenied
from apps.core.models import AuditEntry
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]


def test_admin_sets_posix_ids_through_the_api_and_it_is_audited(admin_api, user):
    response = admin_api.patch(f"/api/v1/admin/users/{user.pk}/", {"posix_uid": 4201, "posix_gid": 4200}, format="json")
    assert response.status_code == 200
    assert (response.json()["posix_uid"], response.json()["posix_gid"]) == (4201, 4200)
    user.refresh_from_db()
    assert (user.posix_uid, user.posix_gid) == (4201, 4200)
    entry = AuditEntry.objects.get(action="user.update")
    assert (entry.before["posix_uid"], entry.after["posix_uid"]) == (None, 4201)


def test_posix_ids_can_be_cleared(admin_user, user):
    services.user_update(actor=admin_user, user=user, posix_uid=5000, posix_gid=5000)
    services.user_update(actor=admin_user, user=user, posix_uid=None, posix_gid=None)
    user.refresh_from_db()
    assert (user.posix_uid, user.posix_gid) == (None, None)


@pytest.mark.parametrize("value", [0, 999, -1, POSIX_ID_MAX + 1, True, "1200"])
def test_out_of_range_uid_is_refused_and_nothing_changes(admin_user, user, value):
    with pytest.raises(ApplicationError) as exc:
        services.user_update(actor=admin_user, user=user, posix_uid=value, nickname="changed")
    assert "1000" in exc.value.fields["posix_uid"][0]
    user.refresh_from_db()
    assert (user.posix_uid, user.nickname) == (None, "")
    assert not AuditEntry.objects.filter(action="user.update").exists()


def test_uid_already_taken_is_refused_naming_its_owner(admin_user, user, other_user):
    services.user_update(actor=admin_user, user=other_user, posix_uid=3000)
    with pytest.raises(ApplicationError) as exc:
        services.user_update(actor=admin_user, user=user, posix_uid=3000)
    assert exc.value.fields["posix_uid"] == ["uid 3000 already belongs to bob."]
    user.refresh_from_db()
    assert user.posix_uid is None
    # Re-saving one's own uid is not a conflict; gids may be shared.
    services.user_update(actor=admin_user, user=other_user, posix_uid=3000, posix_gid=100000)
    services.user_update(actor=admin_user, user=user, posix_gid=100000)


def test_database_enforces_unique_uid_and_range():
    UserFactory(username="u1", posix_uid=2000)
    with pytest.raises(IntegrityError), transaction.atomic():
        UserFactory(username="u2", posix_uid=2000)
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.filter(username="u1").update(posix_gid=12)


def test_users_cannot_set_their_own_posix_ids(api, user):
    response = api.patch(f"/api/v1/admin/users/{user.pk}/", {"posix_uid": 4201}, format="json")
    assert response.status_code == 403
    with pytest.raises(PermissionDenied):
        services.user_update(actor=user, user=user, posix_uid=4201)
    user.refresh_from_db()
    assert user.posix_uid is None


def test_profile_shows_posix_ids(admin_user, user):
    page = Client()
    page.force_login(user)
    assert "not set" in page.get("/account/").content.decode()
    services.user_update(actor=admin_user, user=user, posix_uid=4201, posix_gid=4200)
    body = page.get("/account/").content.decode()
    assert "4201" in body and "4200" in body


def _admin_client(user: User) -> Client:
    user.is_staff = True  # Django's admin site lets in staff only
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def test_django_admin_edits_posix_ids_through_the_service(admin_user, user):
    client = _admin_client(admin_user)
    url = f"/django-admin/accounts/user/{user.pk}/change/"
    form = {"nickname": "", "email": "", "role": user.role, "is_active": "on", "posix_uid": "4300", "posix_gid": "4300"}
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert (user.posix_uid, user.posix_gid) == (4300, 4300)
    assert AuditEntry.objects.filter(action="user.update", actor=admin_user).count() == 1


def test_django_admin_shows_a_taken_uid_next_to_the_field(admin_user, user, other_user):
    services.user_update(actor=admin_user, user=other_user, posix_uid=4400)
    client = _admin_client(admin_user)
    form = {"nickname": "", "email": "", "role": user.role, "is_active": "on", "posix_uid": "4400", "posix_gid": ""}
    response = client.post(f"/django-admin/accounts/user/{user.pk}/change/", form)
    assert response.status_code == 200
    assert "4400" in response.content.decode() and "already" in response.content.decode()
    user.refresh_from_db()
    assert user.posix_uid is None


def test_django_admin_users_are_root_only(user):
    client = _admin_client(user)
    assert client.get("/django-admin/accounts/user/").status_code == 403
