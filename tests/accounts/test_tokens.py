"""Token lifecycle: hashed at rest, shown once, expiry, revocation, scopes, inactive users."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import services, tokens
from apps.accounts.models import ApiToken
from apps.core.errors import ApplicationError, NotFound, PermissionDenied
from apps.core.models import AuditEntry
from tests.factories import UserFactory


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.mark.django_db
def test_token_is_stored_hashed_and_only_prefix_in_clear(user):
    issued = services.token_create(actor=user, name="laptop")
    row = ApiToken.objects.get(pk=issued.token.pk)
    assert issued.raw.startswith(f"rota_{row.prefix}_")
    assert row.digest == tokens.digest(issued.raw)
    assert issued.raw not in {row.digest, row.prefix, row.name}
    # The secret appears in no column of the row.
    secret = issued.raw.split("_", 2)[2]
    assert all(secret not in str(getattr(row, f.attname)) for f in ApiToken._meta.concrete_fields)


@pytest.mark.django_db
def test_token_is_shown_once_at_creation(api):
    created = api.post("/api/v1/tokens/", {"name": "ci", "scope": "read_only"}, format="json")
    assert created.status_code == 201
    raw = created.json()["token"]
    assert raw.startswith("rota_")
    listed = api.get("/api/v1/tokens/").json()["results"]
    assert {t["name"] for t in listed} == {"tests", "ci"}
    assert all("token" not in t for t in listed)
    detail = api.get(f"/api/v1/tokens/{created.json()['id']}/").json()
    assert "token" not in detail
    assert bearer(raw).get("/api/v1/me/").json()["token_scope"] == "read_only"


@pytest.mark.django_db
def test_expired_token_gets_401_saying_expired(user):
    issued = services.token_create(actor=user, name="short", expires_at=timezone.now() + timedelta(minutes=5))
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(issued.raw).get("/api/v1/me/")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_revoked_token_gets_401_saying_revoked(api, user):
    issued = services.token_create(actor=user, name="old")
    assert bearer(issued.raw).get("/api/v1/me/").status_code == 200
    assert api.delete(f"/api/v1/tokens/{issued.token.pk}/").status_code == 204
    response = bearer(issued.raw).get("/api/v1/me/")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]
    # Revoking again is harmless; the revoked token is hidden from the default list.
    assert api.delete(f"/api/v1/tokens/{issued.token.pk}/").status_code == 204
    names = [t["name"] for t in api.get("/api/v1/tokens/").json()["results"]]
    assert "old" not in names
    names_all = [t["name"] for t in api.get("/api/v1/tokens/?include_revoked=1").json()["results"]]
    assert "old" in names_all


@pytest.mark.django_db
def test_inactive_user_token_gets_401_saying_deactivated(user):
    issued = services.token_create(actor=user, name="x")
    user.is_active = False
    user.save()
    response = bearer(issued.raw).get("/api/v1/me/")
    assert response.status_code == 401
    assert "deactivated" in response.json()["error"]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw", "word"),
    [("nonsense", "Malformed"), ("rota_abcdefgh_" + "x" * 32, "Unknown")],
)
def test_bad_tokens_get_401_with_reason(raw, word):
    response = bearer(raw).get("/api/v1/me/")
    assert response.status_code == 401
    assert word in response.json()["error"]["message"]


@pytest.mark.django_db
def test_right_prefix_wrong_secret_is_unknown(user):
    issued = services.token_create(actor=user, name="x")
    forged = issued.raw[:-4] + ("aaaa" if not issued.raw.endswith("aaaa") else "bbbb")
    response = bearer(forged).get("/api/v1/me/")
    assert response.status_code == 401
    assert "Unknown" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_read_only_scope_cannot_write(user):
    issued = services.token_create(actor=user, name="ro", scope="read_only")
    client = bearer(issued.raw)
    assert client.get("/api/v1/tokens/").status_code == 200
    response = client.post("/api/v1/tokens/", {"name": "escalate"}, format="json")
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]["message"]
    assert ApiToken.objects.filter(user=user).count() == 1


@pytest.mark.django_db
def test_job_token_cannot_call_general_api(user):
    issued = services.token_create_for_attempt(user=user, attempt_id=42)
    response = bearer(issued.raw).get("/api/v1/tokens/")
    assert response.status_code == 403
    # Job tokens are the platform's: never listed to the owner.
    assert services.token_create(actor=user, name="mine").token.scope != "job"
    names = [t.name for t in ApiToken.objects.filter(user=user).exclude(scope="job")]
    assert names == ["mine"]


@pytest.mark.django_db
def test_last_used_is_recorded(user):
    issued = services.token_create(actor=user, name="x")
    assert issued.token.last_used_at is None
    bearer(issued.raw).get("/api/v1/me/")
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "ok", "scope": "job"}, "scope"),
        ({"name": "ok", "expires_at": "past"}, "expires_at"),
    ],
)
def test_token_create_rejects_bad_input(user, kwargs, field):
    if kwargs.get("expires_at") == "past":
        kwargs["expires_at"] = timezone.now() - timedelta(days=1)
    with pytest.raises(ApplicationError) as info:
        services.token_create(actor=user, **kwargs)
    assert field in info.value.fields
    assert not ApiToken.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_admin_issues_token_for_other_user_and_it_is_audited(admin_api, user):
    response = admin_api.post(f"/api/v1/admin/users/{user.pk}/tokens/", {"name": "for alice"}, format="json")
    assert response.status_code == 201
    token = ApiToken.objects.get(name="for alice")
    assert token.user == user
    assert token.created_by.username == "root-admin"
    entry = AuditEntry.objects.get(action="token.issue")
    assert entry.actor_name == "root-admin"
    assert entry.after["user"] == "alice"
    assert bearer(response.json()["token"]).get("/api/v1/me/").json()["username"] == "alice"


@pytest.mark.django_db
def test_user_cannot_issue_token_for_someone_else(user, other_user):
    with pytest.raises(PermissionDenied):
        services.token_create(actor=user, user=other_user, name="sneaky")
    assert not ApiToken.objects.filter(user=other_user).exists()


@pytest.mark.django_db
def test_user_cannot_revoke_someone_elses_token(api, user, other_user):
    theirs = services.token_create(actor=other_user, name="theirs")
    assert api.delete(f"/api/v1/tokens/{theirs.token.pk}/").status_code == 404
    with pytest.raises(NotFound):
        services.token_revoke(actor=user, token=theirs.token)
    theirs.token.refresh_from_db()
    assert theirs.token.revoked_at is None


@pytest.mark.django_db
def test_deactivated_user_cannot_get_new_token(admin_user):
    target = UserFactory(username="gone", is_active=False)
    with pytest.raises(ApplicationError, match="deactivated"):
        services.token_create(actor=admin_user, user=target, name="x")


@pytest.mark.django_db
def test_password_login_issues_a_token(user):
    client = APIClient()
    response = client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "pw-for-tests-1", "name": "cli"}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert bearer(response.json()["token"]).get("/api/v1/me/").json()["username"] == "alice"
    assert ApiToken.objects.get(user=user).name == "cli"


@pytest.mark.django_db
def test_password_login_refuses_wrong_credentials(user):
    client = APIClient()
    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_credentials"
    assert not ApiToken.objects.exists()
    user.is_active = False
    user.save()
    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": "pw-for-tests-1"}, format="json")
    assert response.json()["error"]["code"] == "invalid_credentials"


@pytest.mark.django_db
def test_me_says_which_token_and_a_read_only_token_may_revoke_itself(user):
    issued = services.token_create(actor=user, name="ro", scope="read_only")
    client = bearer(issued.raw)
    me = client.get("/api/v1/me/").json()
    assert (me["token_id"], me["token_prefix"]) == (issued.token.pk, issued.token.prefix)
    other = services.token_create(actor=user, name="other")
    assert client.delete(f"/api/v1/tokens/{other.token.pk}/").status_code == 403  # not itself: read-only
    assert client.delete(f"/api/v1/tokens/{issued.token.pk}/").status_code == 204
    issued.token.refresh_from_db()
    other.token.refresh_from_db()
    assert issued.token.revoked_at is not None and other.token.revoked_at is None
