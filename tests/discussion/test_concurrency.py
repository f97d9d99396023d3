"""Likes stay exact when many people (and the same person twice) click at once. PostgreSQL: the
embedded SQLite serialises writers, so there is no race to lose there."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection

from discussion import services
from discussion.models import Like, Post, Reply
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres_only, pytest.mark.django_db(transaction=True)]


def run_together(jobs: list[Callable[[], object]]) -> list[BaseException]:
    """Start every job at the same moment (a barrier), wait for all, return their errors."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], object]) -> None:
        try:
            barrier.wait(10)
            job()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return errors


def test_concurrent_likes_and_unlikes_stay_exact():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    author = UserFactory(username="poster")
    post = services.post_create(actor=author, title="t", body="b", category="jobs", tags="x")
    reply = services.reply_create(actor=author, post=post, body="r")
    people = [UserFactory(username=f"fan{i}") for i in range(12)]
    for person in people[:4]:  # these four take their like back during the storm
        services.like_toggle(actor=person, post=post)

    jobs: list[Callable[[], object]] = []
    for person in people:
        jobs.append(lambda p=person: services.like_toggle(actor=p, post=post))
        jobs.append(lambda p=person: services.like_toggle(actor=p, reply=reply))
    # One person double-clicks: two toggles of theirs race each other.
    jobs.append(lambda: services.like_toggle(actor=people[-1], reply=reply))
    assert run_together(jobs) == []

    post.refresh_from_db()
    reply.refresh_from_db()
    assert post.like_count == Like.objects.filter(post=post).count() == 8
    assert reply.like_count == Like.objects.filter(reply=reply).count()
    assert reply.like_count in (11, 12)  # the double-click ends liked or not, but counted exactly
    assert Post.objects.get(pk=post.pk).like_count >= 0 and Reply.objects.get(pk=reply.pk).like_count >= 0
