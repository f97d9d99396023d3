"""Fixtures shared by the whole suite: users, API clients authenticated by token."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from apps.accounts import services as account_services
from apps.accounts.models import User
from tests.factories import UserFactory


@pytest.fixture
def user(db: None) -> User:
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db: None) -> User:
    return UserFactory(username="bob")


@pytest.fixture
def admin_user(db: None) -> User:
    account_services.ensure_admin_groups()
    return UserFactory(username="root-admin", groups=["root"])


@pytest.fixture
def make_client(db: None) -> Callable[[User | None], APIClient]:
    """An API client authenticated with a fresh bearer token of ``user`` (anonymous for None)."""

    def make(user: User | None, scope: str = "all") -> APIClient:
        client = APIClient()
        if user is not None:
            issued = account_services.token_create(actor=user, name="tests", scope=scope)
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw}")
        return client

    return make


@pytest.fixture
def api(make_client: Callable[[User | None], APIClient], user: User) -> APIClient:
    return make_client(user)


@pytest.fixture
def admin_api(make_client: Callable[[User | None], APIClient], admin_user: User) -> APIClient:
    return make_client(admin_user)


class TaskLog:
    """Records the background passes services ask for, and runs the ones a test allows.

    By default scheduling passes run inline (after commit) and launcher passes are only recorded:
    scheduler tests play the launcher through ``apps.experiments.lifecycle``. Launcher tests
    call ``allow("apps.launcher.tasks.reconcile_pass")``.
    """

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.allowed: set[str] = {"apps.scheduler.tasks.schedule_pass"}

    def allow(self, name: str) -> None:
        self.allowed.add(name)

    def count(self, name: str) -> int:
        return sum(1 for c in self.calls if c == name)


@pytest.fixture(autouse=True)
def task_log(monkeypatch: pytest.MonkeyPatch) -> TaskLog:
    from apps.core import tasks

    log = TaskLog()

    def dispatch(name: str, args: tuple[object, ...]) -> None:
        log.calls.append(name)
        if name in log.allowed:
            tasks.run_now(name, *args)

    monkeypatch.setattr(tasks, "_dispatch", dispatch)
    return log
