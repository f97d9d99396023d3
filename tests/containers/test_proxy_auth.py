"""Who the proxy serves: the session's user is loaded by Django's own rules together with the
container, in one trip to the database thread (``proxy._resolve``)."""

from __future__ import annotations

import asyncio

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


def resolve(session, owner="alice", name="lab", rest="lab"):
    return asyncio.run(proxy._resolve(session, owner, name, rest))


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
