"""Notifications from the forum: who is told what, aggregation while unread, preferences, reading,
and the live badge events."""

from __future__ import annotations

import pytest

from apps.notifications import presentation, services
from apps.notifications.choices import NotificationKind
from apps.notifications.models import Notification
from discussion import services as forum
from portal.realtime import capture_events
from tests.factories import UserFactory
from tests.permissions import db_state


def rows(user):
    return [
        (n.kind, n.group_key, n.actor_names, n.count, presentation.describe(n))
        for n in Notification.objects.filter(recipient=user).order_by("id")
    ]


def test_reply_quote_and_mention_tell_each_person_once(make_post, make_reply, author, reader, moderator):
    carol = UserFactory(username="carol", nickname="Carol C.")
    post = make_post()
    first = make_reply(post, actor=carol, body="first")
    make_reply(post, actor=reader, body="as @carol said, and @alice too", quote_id=first.pk)
    assert rows(author) == [
        (
            "reply",
            f"reply:post:{post.pk}",
            ["Carol C.", "Bobby"],
            2,
            "Bobby and Carol C. replied 2 times to “NCCL timeout on 4 nodes”",
        )
    ]
    assert rows(carol) == [
        ("quote", f"quote:reply:{first.pk}", ["Bobby"], 1, "Bobby quoted your reply in “NCCL timeout on 4 nodes”")
    ]
    assert rows(reader) == [] and rows(moderator) == []


def test_likes_aggregate_while_unread_then_start_a_new_row(make_post, author, reader, moderator):
    post = make_post()
    others = [UserFactory(username=f"fan{i}", nickname=f"Fan {i}") for i in range(2)]
    for user in (reader, moderator, *others):
        forum.like_toggle(actor=user, post=post)
    forum.like_toggle(actor=reader, post=post)  # unlike: nothing new to say
    [(kind, key, _names, count, text)] = rows(author)
    assert (kind, key, count) == ("like", f"like:post:{post.pk}", 4)
    assert text == "Fan 1 and 3 others liked your writing in “NCCL timeout on 4 nodes”"
    services.notifications_mark_read(user=author)
    forum.like_toggle(actor=reader, post=post)
    assert [r[3] for r in rows(author)] == [4, 1]


def test_own_actions_muted_kinds_and_inactive_people_are_not_told(make_post, make_reply, author, reader):
    post = make_post()
    make_reply(post, actor=author, body="bump")
    forum.like_toggle(actor=author, post=post)
    assert rows(author) == []
    services.preferences_set(user=author, enabled=["reply", "quote", "mention", "moderation", "notice"])
    forum.like_toggle(actor=reader, post=post)
    assert rows(author) == []
    make_reply(post, actor=reader)
    assert [r[0] for r in rows(author)] == ["reply"]
    reader.is_active = False
    reader.save()
    make_reply(post, actor=author, body="@bob are you there?")
    assert rows(reader) == []


def test_moderation_tells_the_author_without_naming_the_moderator(make_post, make_reply, author, moderator):
    post = make_post()
    reply = make_reply(post, actor=author, body="mine")
    forum.reply_delete(actor=moderator, reply=reply)
    forum.post_moderate(actor=moderator, post=post, action="lock")
    texts = [r[4] for r in rows(author)]
    assert texts == [
        "A moderator deleted your writing in “NCCL timeout on 4 nodes”",
        "A moderator locked your writing in “NCCL timeout on 4 nodes”",
    ]
    assert all(r[2] == [] for r in rows(author))


def test_badge_events_carry_the_unread_count_after_commit(
    make_post, make_reply, author, reader, django_capture_on_commit_callbacks
):
    post = make_post()
    with capture_events() as sent, django_capture_on_commit_callbacks(execute=True):
        make_reply(post, actor=reader)
        forum.like_toggle(actor=reader, post=post)
        services.notifications_mark_read(user=author)
    mine = sent.to_group(f"user.{author.pk}")
    assert [(e.type, e.body["unread_count"]) for e in mine] == [
        ("notification.created", 1),
        ("notification.created", 2),
        ("notification.read", 0),
    ]
    assert mine[1].body["kind"] == "like" and mine[1].body["url"] == f"/discuss/{post.pk}/"


def test_marking_read_touches_only_ones_own(make_post, make_reply, author, reader):
    post = make_post()
    make_reply(post, actor=reader)
    theirs = Notification.objects.get(recipient=author)
    before = db_state()
    assert services.notifications_mark_read(user=reader, ids=[theirs.pk]) == 0
    assert db_state() == before
    assert services.notifications_mark_read(user=author, ids=[theirs.pk]) == 1


@pytest.mark.parametrize("enabled", [[], list(NotificationKind.values)])
def test_preferences_round_trip(author, enabled):
    from apps.notifications.selectors import enabled_kinds

    services.preferences_set(user=author, enabled=[*enabled, "bogus"])
    assert enabled_kinds(user=author) == set(enabled)


def test_an_admin_notice_reaches_its_audience_as_a_notification(author, reader, moderator, db):
    from django.contrib.auth.models import Group

    from apps.web import services as web_services
    from apps.web.models import Notice
    from tests.factories import UserFactory

    admin = UserFactory(username="root-admin", groups=["root"])
    team = Group.objects.create(name="vision")
    reader.team = team
    reader.save()
    services.preferences_set(user=moderator, enabled=["reply"])  # moderator muted notices
    web_services.notice_save(actor=admin, notice=Notice(title="Maintenance <b>Sat</b>", body="Nodes n1–n4 down"))
    web_services.notice_save(actor=admin, notice=Notice(title="For vision", audience="group", group=team))
    everyone = Notification.objects.filter(group_key__startswith="notice:").order_by("recipient__username", "id")
    assert [(n.recipient.username, n.target_title) for n in everyone] == [
        ("alice", "Maintenance <b>Sat</b>"),
        ("bob", "Maintenance <b>Sat</b>"),
        ("bob", "For vision"),
        ("root-admin", "Maintenance <b>Sat</b>"),
    ]
    note = everyone[0]
    assert (note.kind, note.detail, note.target_url, presentation.describe(note)) == (
        "notice",
        "Nodes n1–n4 down",
        "/",
        "Maintenance <b>Sat</b>",
    )
