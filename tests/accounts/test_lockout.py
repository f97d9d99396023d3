"""Password guessing: too many failed sign-ins lock the account (or the address) for a while,
through every door that takes a password — the portal's form, the Django admin's login and the
API's token exchange — which share one count (django-axes, ``apps/accounts/lockout.py``); the right
password does not get through while locked; success clears the count; the refusal reads the same
whether the account exists or not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiToken
from tests.factories import UserFactory

PASSWORD = "pw-for-tests-1"
LOCKED = "Too many failed sign-ins. Try again in 10 minutes."

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=600)


def portal_sign_in(client, username: str, password: str, **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


def admin_sign_in(client, username: str, password: str):
    return client.post("/django-admin/login/", {"username": username, "password": password, "next": "/django-admin/"})


def token_exchange(username: str, password: str):
    return APIClient().post("/api/v1/auth/token/", {"username": username, "password": password, "name": "cli"})


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def age_attempts(seconds: int) -> None:
    """What time passing does to the recorded failures."""
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=seconds))


def test_the_portal_locks_an_account_after_repeated_failures_then_lets_it_in_after_the_window(client):
    UserFactory(username="alice")
    for _ in range(2):
        response = portal_sign_in(client, "alice", "wrong")
        assert response.status_code == 200
        assert "Please enter a correct" in response.content.decode()
    third = portal_sign_in(client, "alice", "wrong")
    assert third.status_code == 429
    locked = portal_sign_in(client, "Alice", PASSWORD)  # the right password, any case: still refused
    assert locked.status_code == 429
    assert locked["Retry-After"] == "600"
    assert LOCKED in locked.content.decode()
    assert not signed_in(client)

    age_attempts(601)
    assert portal_sign_in(client, "alice", PASSWORD).status_code == 302
    assert signed_in(client)


def test_success_clears_the_accounts_count(client):
    UserFactory(username="alice")
    for _ in range(2):
        portal_sign_in(client, "alice", "wrong")
    assert portal_sign_in(client, "alice", PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        assert portal_sign_in(client, "alice", "wrong").status_code == 200
    assert portal_sign_in(client, "alice", PASSWORD).status_code == 302


def test_one_address_guessing_many_accounts_is_locked_out(client):
    UserFactory(username="carol")
    for number in range(3):
        portal_sign_in(client, f"nobody{number}", "guess")
    locked = portal_sign_in(client, "carol", PASSWORD)
    assert locked.status_code == 429
    assert not signed_in(client)
    other_address = portal_sign_in(client, "carol", PASSWORD, REMOTE_ADDR="10.0.0.7")
    assert other_address.status_code == 302


def test_the_django_admin_login_counts_and_is_refused_too(client):
    UserFactory(username="root-admin", groups=["root"], is_staff=True, is_superuser=True)
    for _ in range(2):
        assert admin_sign_in(client, "root-admin", "wrong").status_code == 200
    portal_sign_in(client, "root-admin", "wrong")  # the third failure, through the portal
    locked = admin_sign_in(client, "root-admin", PASSWORD)
    assert locked.status_code == 429
    assert LOCKED in locked.content.decode()
    assert not signed_in(client)


def test_the_api_token_exchange_shares_the_lock_and_issues_nothing_while_locked(client):
    user = UserFactory(username="alice")
    for _ in range(2):
        response = token_exchange("alice", "wrong")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_credentials"
    portal_sign_in(client, "alice", "wrong")  # the third failure, through the portal
    response = token_exchange("alice", PASSWORD)
    assert response.status_code == 429
    assert response["Retry-After"] == "600"
    assert response.json() == {
        "error": {"code": "throttled", "message": LOCKED, "fields": {}, "retry_after_seconds": 600}
    }
    assert not ApiToken.objects.filter(user=user).exists()


def test_the_refusal_is_the_same_for_an_account_that_does_not_exist():
    UserFactory(username="alice")
    for name in ("alice", "ghost"):
        assert token_exchange(name, "wrong").json()["error"]["message"] == "Wrong user name or password."
    # the address reaches its limit now: both names are refused the same way
    real, ghost = token_exchange("alice", "wrong"), token_exchange("ghost", "wrong")
    assert (real.status_code, real.json()) == (ghost.status_code, ghost.json())
    assert real.status_code == 429
