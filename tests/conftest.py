"""Fixtures shared by the whole suite: users, API clients authenticated by token."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.test import Client
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from apps.accounts import services as account_services
from apps.accounts.models import User
from tests.factories import UserFactory

# scripts/test (and so CI) runs the property tests on the same examples every time
# (ROTA_HYPOTHESIS_PROFILE=ci): a run cannot fail on a new random example that the next run never
# sees again. Run pytest without it to explore new examples; a failure prints a reproduction blob.
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.register_profile("explore", print_blob=True)
hypothesis_settings.load_profile(os.environ.get("ROTA_HYPOTHESIS_PROFILE", "explore"))


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

    @contextmanager
    def paused(self, name: str = "apps.scheduler.tasks.schedule_pass") -> Iterator[None]:
        """Record ``name`` without running it inside the block: e.g. submit jobs the scheduler has not
        seen yet, then take the quota away (a job that can never start is refused at submit)."""
        was_allowed = name in self.allowed
        self.allowed.discard(name)
        try:
            yield
        finally:
            if was_allowed:
                self.allowed.add(name)


@pytest.fixture
def browser_for(db: None) -> Callable[..., Client]:
    """A page client signed in as ``user`` with the session (anonymous for None), as a browser would
    be; in English unless ``language`` says otherwise."""

    def make(user: User | None, language: str = "en") -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        client.cookies["django_language"] = language
        return client

    return make


@pytest.fixture
def plain_static_storage(settings):
    """Pages link static files; the production profile's manifest storage needs collectstatic."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _realtime_outbox_drained():
    """Events a test committed reach the channel layer before the next test starts (database ids
    are reused between tests, so a late event could land in the next test's ``user.1`` group)."""
    from portal.realtime import outbox

    yield
    assert outbox.flush(10.0), "realtime events were still being sent 10 s after the test"


@pytest.fixture(autouse=True)
def _scheduler_snapshot_forgotten():
    """Each test starts with a full scheduler snapshot: the rows kept by the last test's passes
    belong to a database that was rolled back or flushed (``apps/scheduler/snapshot.py``)."""
    from apps.scheduler import history
    from apps.scheduler.snapshot import CACHE

    CACHE.forget()
    history.MEMO.sampled = history.MEMO.pruned = None  # and each samples the load afresh


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


@pytest.fixture
def workspace(tmp_path):
    """A job workspace with a trivial script (the local backend checks paths at submit)."""
    (tmp_path / "train.py").write_text("print('hello')\n")
    (tmp_path / "run.sh").write_text("echo hello\n")
    return tmp_path


class Cluster:
    """A small cluster: node group ``training`` with ``n`` nodes, environment ``default`` for everyone,
    and public quotas per priority level (``quotas`` maps level → nodes)."""

    def __init__(self, n: int, quotas: dict[int, int], rooms: list[str] | None = None) -> None:
        from django.contrib.auth.models import Group

        from apps.cluster import services as cluster_services
        from apps.quotas import services as quota_services

        self.group = cluster_services.node_group_upsert(actor=None, name="training")
        self.nodes = [
            cluster_services.node_upsert(
                actor=None, name=f"n{i}", group=self.group, gpu_count=8, room=(rooms[i] if rooms else "a")
            )
            for i in range(n)
        ]
        env = cluster_services.environment_upsert(actor=None, name="default", image="python:3.11")
        public = Group.objects.get_or_create(name="public")[0]
        quota_services.quota_set(actor=None, group=public, kind="environment", environment=env, value=1)
        for level, value in quotas.items():
            self.set_quota(public, level, value)

    def set_quota(self, subject, level: int, value: int) -> None:
        from django.contrib.auth.models import Group

        from apps.quotas import services as quota_services

        kwargs = {"group": subject} if isinstance(subject, Group) else {"user": subject}
        quota_services.quota_set(actor=None, kind="node", node_group=self.group, priority=level, value=value, **kwargs)


@pytest.fixture
def cluster(transactional_db):
    """Four nodes and generous public quotas. Transactional: passes run after real commits."""
    return Cluster(4, {0: 4, 10: 4, 20: 4, 30: 4, 40: 4, 50: 4})


@pytest.fixture
def submit(workspace):
    """Submit a job through the service with sensible defaults."""
    from apps.experiments import services as experiment_services

    counter = {"n": 0}

    def do(user, **kwargs):
        counter["n"] += 1
        values = {
            "name": f"job-{counter['n']}",
            "workspace": str(workspace),
            "entrypoint": "train.py",
            "group": "training",
            "nodes": 1,
            "priority": 10,
        }
        values.update(kwargs)
        return experiment_services.experiment_submit(user=user, **values)

    return do


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class Platform:
    """A running embedded platform: live HTTP server, local backend, scheduler and launcher loops."""

    def __init__(self, url: str, root) -> None:
        self.url = url
        self.root = root

    @staticmethod
    def backend():
        from apps.launcher.backends import get_backend

        return get_backend()


@pytest.fixture(scope="session", autouse=True)
def _end_stray_database_sessions(django_db_setup, django_db_blocker):
    """Before the test database is dropped, end the sessions worker threads left open (the test
    server's and Channels' thread pools keep theirs), or PostgreSQL refuses to drop it."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="session")
def _asgi_server(django_db_setup, django_db_blocker):
    """One uvicorn thread per test process serving the ASGI application (see tests/asgi_server.py)."""
    from tests.asgi_server import AsgiServer, build_test_application

    server = AsgiServer(build_test_application()).start()
    yield server
    server.stop()


@pytest.fixture
def asgi_live_server(_asgi_server, transactional_db):
    """The live platform's address, HTTP and websockets alike; the database is the test's."""
    return _asgi_server


@pytest.fixture
def platform(asgi_live_server, settings, task_log, tmp_path):
    import threading

    from django.db import close_old_connections

    from apps.core.tasks import run_now
    from apps.launcher.backends import get_backend, reset_backend
    from apps.logs.tailer import forget_hubs

    settings.ROTA_PUBLIC_URL = asgi_live_server.url
    settings.ROTA_BACKEND = "local"
    settings.ROTA_RUN_ROOT = tmp_path / "run"
    settings.ROTA_LOG_ROOT = tmp_path / "logs"
    settings.ROTA_LAUNCHER = {**settings.ROTA_LAUNCHER, "GRACE_SECONDS": 5.0, "START_TIMEOUT_SECONDS": 30.0}
    settings.ROTA_SCHEDULER = {**settings.ROTA_SCHEDULER, "MIN_RUN_SECONDS": 0.0}
    reset_backend()
    forget_hubs()  # the server outlives this test: its log tailers must read this test's log root
    task_log.allowed.clear()  # passes run in the loop below, as in the embedded server
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for name in ("apps.scheduler.tasks.schedule_pass", "apps.launcher.tasks.reconcile_pass"):
                try:
                    run_now(name)
                except Exception:
                    import logging

                    logging.getLogger("tests").exception("pass failed")
            close_old_connections()
            stop.wait(0.05)
        close_old_connections()

    thread = threading.Thread(target=loop, name="test-platform-loops", daemon=True)
    thread.start()
    try:
        yield Platform(asgi_live_server.url, tmp_path)
    finally:
        stop.set()
        thread.join(30)
        backend = get_backend()
        for attempt_id in backend.known_attempts():
            backend.stop(attempt_id)
        for attempt_id in backend.known_attempts():
            wait_until(lambda a=attempt_id: _released(backend, a), timeout=15, message=f"attempt {attempt_id} to end")
        reset_backend()


def _released(backend, attempt_id: int) -> bool:
    try:
        backend.release(attempt_id)
    except Exception:
        return False
    return True
