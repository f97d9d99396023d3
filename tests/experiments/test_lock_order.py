"""Lock order: the chain row, then its attempts — in services and in the launcher's paths alike.

Two transactions that take the same two rows in opposite orders deadlock; PostgreSQL then fails
one of them (a user's stop would answer 500). SQLite serialises writers, so this is PostgreSQL's.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.experiments import lifecycle
from apps.experiments.choices import StopReason, WorkerStatus
from apps.experiments.models import Attempt, Chain
from apps.scheduler import driver
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


def test_a_stop_and_a_launcher_update_of_the_same_attempt_do_not_deadlock(cluster, submit):
    if connection.vendor != "postgresql":
        pytest.skip("row-level locking needs PostgreSQL (the embedded SQLite serialises writers)")
    user = UserFactory(username="locker")
    chain = submit(user, nodes=1)
    driver.run_pass()
    attempt = Attempt.objects.get(pk=Chain.objects.get(pk=chain.pk).latest_attempt_id)
    assert attempt.worker_status == WorkerStatus.STARTING

    chain_locked = threading.Event()
    errors: list[BaseException] = []
    outcome: dict[str, bool] = {}

    def user_stops() -> None:
        """As ``experiment_stop``: lock the chain, look at it, then change the attempt."""
        try:
            with transaction.atomic():
                Chain.objects.select_for_update().get(pk=chain.pk)
                chain_locked.set()
                # Give the launcher time to take the attempt row first, as it did before the fix.
                launcher_started.wait(5)
                launcher_done.wait(0.5)
                outcome["stopped"] = lifecycle.transition(
                    attempt_id=attempt.pk,
                    target=WorkerStatus.STOPPING,
                    stop_reason=StopReason.USER,
                    stop_requested_at=timezone.now(),
                )
                lifecycle.sync_chain(chain_id=chain.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    launcher_started = threading.Event()
    launcher_done = threading.Event()

    def launcher_marks_running() -> None:
        try:
            chain_locked.wait(5)
            launcher_started.set()
            outcome["running"] = lifecycle.attempt_mark_running(attempt_id=attempt.pk)
            launcher_done.set()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=user_stops), threading.Thread(target=launcher_marks_running)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    # The stop came first (it held the chain); the launcher then found the attempt stopping.
    assert outcome == {"stopped": True, "running": False}
    attempt.refresh_from_db()
    assert attempt.worker_status == WorkerStatus.STOPPING
    assert Chain.objects.get(pk=chain.pk).status == "stopping"
