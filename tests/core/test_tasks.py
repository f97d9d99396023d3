"""Enqueueing passes after commit: each runner, and nothing on rollback."""

from __future__ import annotations

import threading

import pytest
from django.db import transaction

from apps.core import tasks

CALLS: list[tuple[str, tuple[object, ...]]] = []
DONE = threading.Event()


def record(*args: object) -> None:
    CALLS.append(("record", args))
    DONE.set()


@pytest.fixture(autouse=True)
def real_dispatch(monkeypatch, task_log):
    """Undo the suite's recording dispatcher: these tests exercise the real one."""
    monkeypatch.setattr(tasks, "_dispatch", REAL_DISPATCH)
    CALLS.clear()
    DONE.clear()


REAL_DISPATCH = tasks._dispatch


@pytest.mark.django_db(transaction=True)
def test_inline_runs_after_commit_and_never_on_rollback(settings):
    settings.ROTA_TASK_RUNNER = "inline"
    with transaction.atomic():
        tasks.enqueue_on_commit("tests.core.test_tasks.record", 1)
        assert CALLS == []  # not before the commit
    assert CALLS == [("record", (1,))]

    def rolled_back() -> None:
        with transaction.atomic():
            tasks.enqueue_on_commit("tests.core.test_tasks.record", 2)
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        rolled_back()
    assert CALLS == [("record", (1,))]


@pytest.mark.django_db(transaction=True)
def test_thread_runner_runs_in_a_worker_thread(settings):
    settings.ROTA_TASK_RUNNER = "thread"
    tasks.enqueue_on_commit("tests.core.test_tasks.record", 3)
    assert DONE.wait(10)
    tasks.thread_runner.join()
    assert CALLS == [("record", (3,))]


@pytest.mark.django_db(transaction=True)
def test_django_q_runner_hands_the_task_to_the_broker(settings, monkeypatch):
    settings.ROTA_TASK_RUNNER = "django_q"
    sent: list[tuple[object, ...]] = []
    import django_q.tasks

    monkeypatch.setattr(django_q.tasks, "async_task", lambda *a, **k: sent.append((a, k)))
    with transaction.atomic():
        tasks.enqueue_on_commit("apps.scheduler.tasks.schedule_pass")
        assert sent == []
    assert sent == [(("apps.scheduler.tasks.schedule_pass",), {"group": "apps.scheduler.tasks.schedule_pass"})]
