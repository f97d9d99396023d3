"""Password guessing: too many failed sign-ins lock the account (or the address) for a while,
through the portal's form and the API's token exchange alike; the right password does not get
through while locked; success clears the count."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.accounts import signin_guard
from apps.accounts.models import ApiToken
from tests.factories import UserFactory

PASSWORD = "pw-for-tests-1"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]


@pytest.fixture(autouse=True)
def limits(settings):
    settings.ROTA_SIGNIN = {"MAX_FAILURES_PER_ACCOUNT": 3, "MAX_FAILURES_PER_ADDRESS": 5, "WINDOW_SECONDS": 600}


@pytest.fixture
def clock(monkeypatch):
    """signin_guard's wall clock, moved by the test."""
    now = [1_800_000_000.0]
    monkeypatch.setattr(signin_guard, "_now", lambda: now[0])
    return now


def portal_sign_in(client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password})


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_the_portal_locks_an_account_after_repeated_failures_then_lets_it_in_after_the_window(client, clock):
    UserFactory(username="alice")
    for _ in range(3):
        response = portal_sign_in(client, "alice", "wrong")
        assert response.status_code == 200
        assert "Please enter a correct" in response.content.decode()
    locked = portal_sign_in(client, "Alice", PASSWORD)  # the right password, any case: still refused
    assert locked.status_code == 429
    assert locked["Retry-After"] == "600"
    assert "Too many failed sign-ins for this account. Try again in 10 minutes." in locked.content.decode()
    assert not signed_in(client)

    clock[0] += 300
    assert portal_sign_in(client, "alice", PASSWORD)["Retry-After"] == "300"
    clock[0] += 301
    cache.delete_many([f"{signin_guard._account_key('alice')}:n"])  # what the cache's expiry does at 600 s
    assert portal_sign_in(client, "alice", PASSWORD).status_code == 302
    assert signed_in(client)


def test_success_clears_the_accounts_count(client, clock):
    UserFactory(username="alice")
    for _ in range(2):
        portal_sign_in(client, "alice", "wrong")
    assert portal_sign_in(client, "alice", PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        assert portal_sign_in(client, "alice", "wrong").status_code == 200
    assert portal_sign_in(client, "alice", PASSWORD).status_code == 302


def test_one_address_guessing_many_accounts_is_locked_out(client, clock):
    UserFactory(username="carol")
    for number in range(5):
        assert portal_sign_in(client, f"nobody{number}", "guess").status_code == 200
    locked = portal_sign_in(client, "carol", PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed sign-ins from your address." in locked.content.decode()
    other_address = client.post("/login/", {"username": "carol", "password": PASSWORD}, REMOTE_ADDR="10.0.0.7")
    assert other_address.status_code == 302


def test_the_api_token_exchange_shares_the_lock_and_issues_nothing_while_locked(client, clock):
    user = UserFactory(username="alice")
    api = APIClient()
    for _ in range(2):
        response = api.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong", "name": "cli"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_credentials"
    portal_sign_in(client, "alice", "wrong")  # the third failure, through the portal
    response = api.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD, "name": "cli"})
    assert response.status_code == 429
    assert response["Retry-After"] == "600"
    assert response.json()["error"]["code"] == "throttled"
    assert "Too many failed sign-ins for this account" in response.json()["error"]["message"]
    assert not ApiToken.objects.filter(user=user).exists()


def test_racing_failures_all_count():
    threads = [threading.Thread(target=signin_guard.record_failure, args=("alice", None)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get(f"{signin_guard._account_key('alice')}:n") == 12
    assert signin_guard.check("alice", None) is not None
