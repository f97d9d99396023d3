"""Notification pages: permissions, grouping by day, mark read, preferences, the badge, XSS."""

from __future__ import annotations

import pytest

from apps.notifications.models import Notification, NotificationMute
from discussion import services as forum
from tests.discussion.xss import CORPUS, assert_inert
from tests.permissions import db_state

URLS = [
    ("GET", "/notifications/"),
    ("POST", "/notifications/read/"),
    ("GET", "/notifications/unread/"),
    ("GET", "/notifications/settings/"),
    ("POST", "/notifications/settings/"),
]


@pytest.mark.parametrize(("method", "url"), URLS)
def test_anonymous_is_sent_to_sign_in_and_nothing_changes(browser_for, method, url, db):
    before = db_state()
    response = getattr(browser_for(None), method.lower())(url)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    assert db_state() == before


def test_every_notification_url_is_covered():
    from django.urls import get_resolver

    app = next(p for p in get_resolver().url_patterns if getattr(p, "app_name", None) == "notifications")
    assert {"/notifications/" + str(p.pattern) for p in app.url_patterns} == {url for _m, url in URLS}


def test_list_badge_and_mark_read(make_post, make_reply, author, reader, browser_for):
    post = make_post()
    make_reply(post, actor=reader)
    client = browser_for(author)
    page = client.get("/notifications/").content.decode()
    assert "Bobby replied to “NCCL timeout on 4 nodes”" in page
    assert "data-unread-count>1</span>" in page
    assert client.get("/notifications/unread/").json() == {"unread": 1}
    note = Notification.objects.get()
    response = client.post("/notifications/read/", {"id": note.pk, "next": note.target_url})
    assert response["Location"] == f"/discuss/{post.pk}/#floor-1"
    assert client.get("/notifications/unread/").json() == {"unread": 0}
    evil = client.post("/notifications/read/", {"id": note.pk, "next": "//evil.example/"})
    assert evil["Location"] == "/notifications/"


def test_preferences_page_saves_the_ticked_kinds(author, browser_for):
    client = browser_for(author)
    client.post("/notifications/settings/", {"kinds": ["reply", "mention"]})
    assert set(NotificationMute.objects.values_list("kind", flat=True)) == {
        "quote",
        "like",
        "moderation",
        "notice",
        "container",
    }
    page = client.get("/notifications/settings/").content.decode()
    assert 'value="reply" checked' in page and 'value="like">' in page


def test_notification_texts_are_inert(make_post, make_reply, author, reader, browser_for):
    reader.nickname = CORPUS[1]
    reader.save()
    post = make_post(title="<script>alert('t')</script>")
    for payload in CORPUS[:4]:
        reader.nickname = payload[:150]
        reader.save()
        make_reply(post, actor=reader, body="x")
    forum.like_toggle(actor=reader, post=post)
    for url in ("/notifications/", "/notifications/?unread=1", "/discuss/"):
        body = browser_for(author).get(url).content.decode()
        assert_inert(body)
    assert "&lt;script&gt;" in browser_for(author).get("/notifications/").content.decode()


def test_chinese_page(make_post, make_reply, author, reader, browser_for):
    from tests.web.test_i18n import english_left

    post = make_post(title="训练卡住", body="卡住", tags="训练")
    make_reply(post, actor=reader, body="重启")
    reader.nickname = "小明"
    reader.save()
    forum.like_toggle(actor=reader, post=post)
    for url in ("/notifications/", "/notifications/settings/"):
        body = browser_for(author, language="zh-hans").get(url).content.decode()
        assert english_left(body) == [], url
