"""Likes, views, hotness, pin/lock/hide, reports and the moderation queue."""

from __future__ import annotations

import pytest

from apps.core.errors import ApplicationError, Conflict, NotFound, PermissionDenied
from apps.core.models import AuditEntry
from discussion import services
from discussion.choices import ReportStatus
from discussion.models import Like, Post, PostView, Report
from tests.permissions import db_state


def test_like_toggles_and_counts_one_per_person(make_post, make_reply, author, reader, moderator):
    post = make_post()
    assert services.like_toggle(actor=reader, post=post) == services.LikeState(liked=True, count=1)
    assert services.like_toggle(actor=moderator, post=post) == services.LikeState(liked=True, count=2)
    assert services.like_toggle(actor=reader, post=post) == services.LikeState(liked=False, count=1)
    reply = make_reply(post)
    assert services.like_toggle(actor=author, reply=reply) == services.LikeState(liked=True, count=1)
    post.refresh_from_db()
    reply.refresh_from_db()
    assert (post.like_count, reply.like_count) == (1, 1)
    assert sorted(Like.objects.values_list("user__username", "post_id", "reply_id")) == [
        ("alice", None, reply.pk),
        ("mod", post.pk, None),
    ]


def test_liking_a_hidden_or_deleted_item_is_not_found_and_changes_nothing(make_post, make_reply, reader, author):
    post = make_post()
    reply = make_reply(post, actor=author)
    services.reply_delete(actor=author, reply=reply)
    Post.objects.filter(pk=post.pk).update(hidden=True)
    post.refresh_from_db()
    reply.refresh_from_db()
    before = db_state()
    with pytest.raises(NotFound):
        services.like_toggle(actor=reader, post=post)
    with pytest.raises(NotFound):
        services.like_toggle(actor=author, reply=reply)
    assert db_state() == before


def test_views_count_people_not_visits(make_post, author, reader, moderator):
    post = make_post()
    assert services.post_view_record(actor=reader, post=post) is True
    assert services.post_view_record(actor=reader, post=post) is False
    assert services.post_view_record(actor=moderator, post=post) is True
    post.refresh_from_db()
    assert (post.view_count, PostView.objects.count()) == (2, 2)


def test_hotness_grows_with_activity_and_with_youth():
    base = services.hotness(views=0, replies=0, likes=0, created_epoch=services.HOT_EPOCH)
    assert base == 0.0
    assert services.hotness(views=10, replies=0, likes=0, created_epoch=services.HOT_EPOCH) == 1.0
    assert services.hotness(views=0, replies=1, likes=1, created_epoch=services.HOT_EPOCH) == round(
        __import__("math").log10(30), 7
    )
    # Ten times the activity buys exactly HOT_SECONDS of age.
    younger = services.hotness(views=1, replies=0, likes=0, created_epoch=services.HOT_EPOCH + services.HOT_SECONDS)
    assert younger == services.hotness(views=10, replies=0, likes=0, created_epoch=services.HOT_EPOCH)


def test_hot_order_puts_the_busier_post_first(make_post, make_reply, reader, moderator, browser_for):
    quiet = make_post(title="quiet one")
    busy = make_post(title="busy one")
    Post.objects.filter(pk=quiet.pk).update(created_at=busy.created_at)
    make_reply(busy)
    services.like_toggle(actor=moderator, post=busy)
    busy.refresh_from_db()
    quiet.refresh_from_db()
    assert busy.hotness > quiet.hotness
    body = browser_for(reader).get("/discuss/?order=hot").content.decode()
    assert body.index("busy one") < body.index("quiet one")
    # The latest order is by activity: the quiet post was written first and nobody touched it since.
    services.post_moderate(actor=moderator, post=quiet, action="pin")
    body = browser_for(reader).get("/discuss/?order=hot").content.decode()
    assert body.index("quiet one") < body.index("busy one")


@pytest.mark.parametrize("action", ["pin", "lock", "hide", "unpin"])
def test_only_moderators_moderate_and_a_refusal_changes_nothing(make_post, author, reader, action):
    post = make_post()
    before = db_state()
    for actor in (author, reader):
        with pytest.raises(PermissionDenied):
            services.post_moderate(actor=actor, post=post, action=action)
    assert db_state() == before


def test_moderator_pins_locks_and_hides_with_an_audit_entry(make_post, moderator):
    post = make_post()
    for action in ("pin", "lock", "hide", "pin"):
        services.post_moderate(actor=moderator, post=post, action=action)
    post.refresh_from_db()
    assert (post.pinned, post.locked, post.hidden) == (True, True, True)
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_name")) == [
        ("forum.post.pin", "mod"),
        ("forum.post.lock", "mod"),
        ("forum.post.hide", "mod"),
    ]
    with pytest.raises(ApplicationError):
        services.post_moderate(actor=moderator, post=post, action="explode")


def test_report_once_while_open_then_the_queue_closes_all_of_them(make_post, make_reply, reader, moderator, author):
    post = make_post()
    reply = make_reply(post, actor=author, body="spam spam")
    first = services.report_create(actor=reader, reply=reply, reason="  spam\n ")
    assert first.reason == "spam"
    with pytest.raises(Conflict):
        services.report_create(actor=reader, reply=reply, reason="again")
    services.report_create(actor=moderator, reply=reply, reason="agree")
    with pytest.raises(ApplicationError) as raised:
        services.report_create(actor=reader, post=post, reason="   ")
    assert list(raised.value.fields) == ["reason"]

    services.report_resolve(actor=moderator, report=first, action="delete")
    reply.refresh_from_db()
    assert reply.is_deleted and reply.deleted_by == moderator
    assert list(Report.objects.values_list("status", flat=True)) == [ReportStatus.RESOLVED] * 2
    with pytest.raises(Conflict):
        services.report_resolve(actor=moderator, report=first, action="dismiss")
    assert {"forum.reply.delete", "forum.report.delete"} <= set(AuditEntry.objects.values_list("action", flat=True))


def test_report_hide_and_dismiss(make_post, reader, moderator):
    post = make_post()
    report = services.report_create(actor=reader, post=post, reason="off-topic")
    services.report_resolve(actor=moderator, report=report, action="hide")
    post.refresh_from_db()
    assert post.hidden and Report.objects.get().status == ReportStatus.RESOLVED
    with pytest.raises(NotFound):  # hidden now: the reader cannot see it any more
        services.report_create(actor=reader, post=post, reason="still bad")
    services.post_moderate(actor=moderator, post=post, action="unhide")
    other = services.report_create(actor=reader, post=post, reason="still bad")
    services.report_resolve(actor=moderator, report=other, action="dismiss")
    assert Report.objects.get(pk=other.pk).status == ReportStatus.DISMISSED


def test_only_moderators_resolve_reports(make_post, reader, author):
    report = services.report_create(actor=reader, post=make_post(), reason="x")
    before = db_state()
    for actor in (reader, author):
        with pytest.raises(PermissionDenied):
            services.report_resolve(actor=actor, report=report, action="delete")
    assert db_state() == before
