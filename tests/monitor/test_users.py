"""The Users page: list, search, filters and counts; create with the token shown once; edit;
activate and deactivate with the admin's choice for the jobs."""

from __future__ import annotations

import re

import pytest

from apps.accounts import tokens
from apps.accounts.models import ApiToken, User
from apps.core.models import AuditEntry
from apps.experiments.choices import ChainStatus, WorkerStatus
from apps.experiments.models import Chain
from tests.factories import UserFactory
from tests.permissions import db_state


def test_list_shows_counts_per_user_and_filters(cluster, submit, admins, django_assert_num_queries):
    alice = UserFactory(username="alice", nickname="Alice A", groups=["vision"])
    bob = UserFactory(username="bob", role="external")
    submit(alice, name="a1", nodes=2)
    submit(alice, name="a2", nodes=2)  # the cluster has 4 nodes: both run
    submit(alice, name="a3", nodes=1)  # waits
    submit(bob, name="b1", nodes=1, priority=0)  # waits too
    client = admins["ops"]
    # session, user, their groups; count, rows, the rows' groups; all groups; totals ×3; unread notifications
    with django_assert_num_queries(11):
        response = client.get("/monitor/users/")
    assert response.status_code == 200
    body = response.content.decode()
    row = re.search(r'<tr data-user="alice">(.*?)</tr>', body, re.S).group(1)
    assert re.search(r'data-col="running">2<', row)
    assert re.search(r'data-col="waiting">1<', row)
    assert re.search(r'data-col="nodes">4<', row)
    assert "vision" in row and "Alice A" in row
    bob_row = re.search(r'<tr data-user="bob">(.*?)</tr>', body, re.S).group(1)
    assert re.search(r'data-col="running">0<', bob_row) and re.search(r'data-col="waiting">1<', bob_row)

    assert 'data-user="bob"' not in client.get("/monitor/users/?q=ali").content.decode()
    assert 'data-user="alice"' in client.get("/monitor/users/?q=Alice%20A").content.decode()
    external = client.get("/monitor/users/?role=external").content.decode()
    assert 'data-user="bob"' in external and 'data-user="alice"' not in external
    vision = client.get("/monitor/users/?group=vision").content.decode()
    assert 'data-user="alice"' in vision and 'data-user="bob"' not in vision
    by_nodes = client.get("/monitor/users/?sort=-nodes").content.decode()
    assert by_nodes.index('data-user="alice"') < by_nodes.index('data-user="bob"')


def test_list_query_count_does_not_grow_with_users(db, admins, django_assert_num_queries):
    for i in range(30):
        UserFactory(username=f"many{i}", groups=["g1", "g2"])
    with django_assert_num_queries(11):
        response = admins["root"].get("/monitor/users/")
    assert response.status_code == 200
    assert response.content.decode().count("<tr data-user=") == 35


def test_create_user_shows_the_token_once_and_audits(db, admins):
    before = AuditEntry.objects.count()
    response = admins["root"].post(
        "/monitor/users/new/",
        {
            "username": "carol",
            "nickname": "Carol",
            "email": "carol@example.com",
            "role": "internal",
            "team": "nlp",
            "groups": "internal, vision",
            "posix_uid": "20001",
            "posix_gid": "20000",
            "issue_token": "on",
        },
    )
    assert response.status_code == 200
    body = response.content.decode()
    raw = re.search(r'<code id="new-token" data-token>([^<]+)</code>', body).group(1)
    carol = User.objects.get(username="carol")
    assert (carol.nickname, carol.team.name, carol.posix_uid, carol.posix_gid) == ("Carol", "nlp", 20001, 20000)
    assert sorted(carol.groups.values_list("name", flat=True)) == ["internal", "nlp", "vision"]
    token = ApiToken.objects.get(user=carol)
    assert token.digest == tokens.digest(raw) and token.created_by.username == "m-root"
    entries = list(AuditEntry.objects.order_by("id")[before:])
    assert [e.action for e in entries] == ["user.create", "token.issue"]
    assert entries[0].before is None
    assert entries[0].after["posix_uid"] == 20001 and entries[0].after["groups"] == ["internal", "nlp", "vision"]
    assert entries[0].actor_name == "m-root"
    # shown once: the user's page never shows it again
    assert raw not in admins["root"].get(f"/monitor/users/{carol.pk}/").content.decode()


def test_create_user_without_token_redirects_to_the_user(db, admins):
    response = admins["root"].post("/monitor/users/new/", {"username": "dave", "role": "external"})
    dave = User.objects.get(username="dave")
    assert response.status_code == 302 and response["Location"] == f"/monitor/users/{dave.pk}/"
    assert not ApiToken.objects.filter(user=dave).exists()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"username": "m-ops", "role": "internal"}, "username", "already exists"),
        ({"username": "bad name", "role": "internal"}, "username", "letters, digits"),
        ({"username": "erin", "role": "boss"}, "role", "Select a valid choice"),
        ({"username": "erin", "role": "internal", "posix_uid": "12"}, "posix_uid", "greater than or equal to 1000"),
    ],
)
def test_create_user_refuses_bad_input_and_writes_nothing(db, admins, data, field, message):
    before = db_state()
    response = admins["root"].post("/monitor/users/new/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert db_state() == before


def test_duplicate_uid_is_refused_with_the_holder_named(db, admins):
    UserFactory(username="holder", posix_uid=30000)
    before = db_state()
    data = {"username": "erin", "role": "internal", "posix_uid": "30000"}
    response = admins["root"].post("/monitor/users/new/", data)
    assert response.status_code == 400
    assert "uid 30000 already belongs to holder." in response.content.decode()
    assert db_state() == before


def test_edit_user_changes_fields_with_one_audit_entry(db, admins):
    person = UserFactory(username="frank", nickname="F", groups=["old"])
    before = AuditEntry.objects.count()
    response = admins["root"].post(
        f"/monitor/users/{person.pk}/edit/",
        {"nickname": "Frank", "role": "external", "team": "speech", "groups": "new", "posix_uid": "40000"},
    )
    assert response.status_code == 302
    person.refresh_from_db()
    assert (person.nickname, person.role, person.team.name, person.posix_uid) == ("Frank", "external", "speech", 40000)
    assert sorted(person.groups.values_list("name", flat=True)) == ["new", "speech"]
    (entry,) = AuditEntry.objects.order_by("id")[before:]
    assert entry.action == "user.update" and entry.target_id == str(person.pk)
    assert entry.before["nickname"] == "F" and entry.before["groups"] == ["old"] and entry.before["role"] == "internal"
    assert entry.after["nickname"] == "Frank" and entry.after["groups"] == ["new", "speech"]
    assert entry.after["posix_uid"] == 40000 and entry.before["posix_uid"] is None


@pytest.mark.parametrize("choice", ["suspend", "stop"])
def test_deactivate_suspends_or_stops_their_jobs_as_chosen(cluster, submit, admins, choice):
    person = UserFactory(username="gina")
    running = submit(person, name="g-run")
    waiting = submit(person, name="g-wait", nodes=4)
    assert Chain.objects.get(pk=running.pk).status == ChainStatus.STARTING
    before = AuditEntry.objects.count()
    response = admins["root"].post(f"/monitor/users/{person.pk}/activation/", {"active": "0", "jobs": choice})
    assert response.status_code == 302
    person.refresh_from_db()
    assert person.is_active is False
    run, wait = Chain.objects.get(pk=running.pk), Chain.objects.get(pk=waiting.pk)
    if choice == "suspend":
        assert run.latest_attempt.worker_status == WorkerStatus.SUSPENDING
        assert wait.status == ChainStatus.HELD
    else:
        assert run.latest_attempt.worker_status == WorkerStatus.STOPPING
        assert wait.status == ChainStatus.CANCELED
    (entry,) = AuditEntry.objects.order_by("id")[before:]
    assert entry.action == "user.update"
    assert entry.before["is_active"] is True and entry.after["is_active"] is False
    verb = "suspended" if choice == "suspend" else "stopped"
    assert entry.note == f"jobs {verb}: #{running.pk}, #{waiting.pk}"

    before = AuditEntry.objects.count()
    response = admins["root"].post(f"/monitor/users/{person.pk}/activation/", {"active": "1", "jobs": "suspend"})
    person.refresh_from_db()
    assert person.is_active is True
    (entry,) = AuditEntry.objects.order_by("id")[before:]
    assert entry.before["is_active"] is False and entry.after["is_active"] is True


def test_an_admin_cannot_deactivate_themselves(db, admins):
    root = admins["users"]["root"]
    before = db_state()
    url = f"/monitor/users/{root.pk}/activation/"
    response = admins["root"].post(url, {"active": "0", "jobs": "stop"}, follow=True)
    assert "You cannot deactivate your own account." in response.content.decode()
    assert db_state() == before
