"""Who the proxy serves: the session's user is loaded by Django's own rules together with the
container, in one trip to the database thread (``proxy._resolve``)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from apps.containers import proxy
from apps.containers.choices import ContainerStatus
from apps.containers.models import Container


def session_of(user) -> SessionStore:
    client = Client()
    client.force_login(user)
    return SessionStore(client.cookies["sessionid"].value)


def running_container(owner, group) -> Container:
    return Container.objects.create(
        owner=owner,
        name="lab",
        node_group=group,
        status=ContainerStatus.RUNNING,
        run=3,
        endpoints={"jupyter": "127.0.0.1:9"},
    )


def resolve(session, owner="alice", name="lab", rest="lab", cookie=None):
    return asyncio.run(proxy._resolve(session, owner, name, rest, cookie))


@pytest.fixture
def clock(monkeypatch):
    """The proxy's monotonic clock, driven by the test; nothing remembered from other tests."""
    now = [1000.0]
    monkeypatch.setattr(proxy, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(proxy, "_resolved", {})
    return now


def test_the_owner_is_served_and_another_user_is_told_nothing(jupyter, user, other_user):
    c = running_container(user, jupyter.group)
    found, status, target, _ = resolve(session_of(user))
    assert (found.pk, status, target.address, target.token) == (
        user.pk,
        200,
        "127.0.0.1:9",
        proxy.container_token(c.pk, 3),
    )
    found, status, target, message = resolve(session_of(other_user))
    assert (found.pk, status, target, message) == (other_user.pk, 404, None, "No such container.")


def test_no_session_a_deactivated_user_or_a_changed_password_is_anonymous(jupyter, user):
    running_container(user, jupyter.group)
    assert resolve(SessionStore()) == (None, 401, None, "")
    session = session_of(user)
    user.set_password("a-new-password-123")  # sessions signed with the old hash end
    user.save()
    assert resolve(SessionStore(session.session_key)) == (None, 401, None, "")
    user.refresh_from_db()
    fresh = session_of(user)
    user.is_active = False
    user.save()
    assert resolve(SessionStore(fresh.session_key)) == (None, 401, None, "")


def test_a_granted_answer_is_remembered_for_its_session_until_the_ttl(jupyter, user, other_user, clock):
    c = running_container(user, jupyter.group)
    mine, theirs = session_of(user), session_of(other_user)
    assert resolve(mine, cookie=mine.session_key)[1] == 200
    Container.objects.filter(pk=c.pk).update(status=ContainerStatus.STOPPED)
    clock[0] += proxy.RESOLVE_TTL - 0.01
    found, status, target, _ = resolve(mine, cookie=mine.session_key)  # remembered: no database trip
    assert (found.pk, status, target.address) == (user.pk, 200, "127.0.0.1:9")
    assert resolve(mine)[1:] == (503, None, "The container is stopped; start it from the containers page.")
    assert resolve(theirs, cookie=theirs.session_key)[1] == 404  # another session shares nothing
    clock[0] += 0.02
    assert resolve(mine, cookie=mine.session_key)[1] == 503


def test_a_refusal_is_never_remembered(jupyter, user, other_user, clock):
    running_container(user, jupyter.group)
    theirs = session_of(other_user)
    assert resolve(theirs, cookie=theirs.session_key)[1:] == (404, None, "No such container.")
    other_user.is_superuser = True
    other_user.save()
    assert resolve(theirs, cookie=theirs.session_key)[1] == 200
    assert resolve(SessionStore(), cookie="forged")[1:] == (401, None, "")
    assert proxy._resolved.keys() == {(theirs.session_key, "alice", "lab", "lab")}
