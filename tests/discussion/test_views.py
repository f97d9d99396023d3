"""Forum pages: the permission suite, forged identities, the XSS corpus on every page, both languages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from discussion import services
from discussion.models import Post, Reply, Revision
from tests.discussion.xss import CORPUS, assert_inert
from tests.factories import NodeFactory
from tests.permissions import db_state


@dataclass
class Page:
    name: str
    method: str
    url: Callable[[dict[str, Any]], str]
    data: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    author_only: bool = False  # another user: 404 and nothing changes; moderators are served
    ok_status: int = 200
    moderator_only: bool = False  # everyone else: 404 and nothing changes

    def call(self, client: Any, ctx: dict[str, Any]) -> Any:
        if self.method == "GET":
            return client.get(self.url(ctx))
        return client.post(self.url(ctx), self.data(ctx) if self.data else {})


def post_form(ctx: dict[str, Any]) -> dict[str, Any]:
    return {"title": "Edited", "body": "new body", "category": "jobs", "tags": "a b"}


PAGES = [
    Page("list", "GET", lambda c: "/discuss/"),
    Page("new", "GET", lambda c: "/discuss/new/"),
    Page("search", "GET", lambda c: "/discuss/search/?q=nccl"),
    Page("preview", "POST", lambda c: "/discuss/preview/", lambda c: {"body": "*x*"}),
    Page("node", "GET", lambda c: f"/discuss/nodes/{c['node'].name}/"),
    Page("upload", "POST", lambda c: "/discuss/upload/", lambda c: {}, ok_status=400),  # no file: test_uploads.py
    Page("create", "POST", lambda c: "/discuss/new/", post_form, ok_status=302),
    Page("detail", "GET", lambda c: f"/discuss/{c['post'].pk}/"),
    Page("history", "GET", lambda c: f"/discuss/{c['post'].pk}/history/"),
    Page("edit", "GET", lambda c: f"/discuss/{c['post'].pk}/edit/", author_only=True),
    Page("edit-post", "POST", lambda c: f"/discuss/{c['post'].pk}/edit/", post_form, author_only=True, ok_status=302),
    Page("delete", "POST", lambda c: f"/discuss/{c['lonely'].pk}/delete/", author_only=True, ok_status=302),
    Page("reply", "POST", lambda c: f"/discuss/{c['post'].pk}/reply/", lambda c: {"body": "hi"}, ok_status=302),
    Page("reply-edit", "GET", lambda c: f"/discuss/replies/{c['reply'].pk}/edit/", author_only=True),
    Page(
        "reply-edit-post",
        "POST",
        lambda c: f"/discuss/replies/{c['reply'].pk}/edit/",
        lambda c: {"body": "changed"},
        author_only=True,
        ok_status=302,
    ),
    Page(
        "reply-delete", "POST", lambda c: f"/discuss/replies/{c['reply'].pk}/delete/", author_only=True, ok_status=302
    ),
    Page("reply-history", "GET", lambda c: f"/discuss/replies/{c['reply'].pk}/history/"),
    Page("like", "POST", lambda c: f"/discuss/{c['post'].pk}/like/", ok_status=302),
    Page("reply-like", "POST", lambda c: f"/discuss/replies/{c['reply'].pk}/like/", ok_status=302),
    Page("report", "POST", lambda c: f"/discuss/{c['post'].pk}/report/", lambda c: {"reason": "spam"}, ok_status=302),
    Page(
        "reply-report",
        "POST",
        lambda c: f"/discuss/replies/{c['reply'].pk}/report/",
        lambda c: {"reason": "rude"},
        ok_status=302,
    ),
    Page(
        "moderate",
        "POST",
        lambda c: f"/discuss/{c['post'].pk}/moderate/",
        lambda c: {"action": "pin"},
        moderator_only=True,
        ok_status=302,
    ),
    Page("moderation", "GET", lambda c: "/discuss/moderation/", moderator_only=True),
    Page(
        "report-resolve",
        "POST",
        lambda c: f"/discuss/moderation/{c['report'].pk}/",
        lambda c: {"action": "dismiss"},
        moderator_only=True,
        ok_status=302,
    ),
]
IDS = [p.name for p in PAGES]


@pytest.fixture
def ctx(make_post, make_reply, author, reader, moderator, browser_for):
    post = make_post()
    reply = make_reply(post, actor=author, body="my own reply")
    lonely = make_post(title="nobody answered")
    report = services.report_create(actor=moderator, post=post, reason="a test report")
    return {
        "node": NodeFactory(name="gpu-a01", gpu_model="A100"),
        "report": report,
        "post": post,
        "reply": reply,
        "lonely": lonely,
        "anonymous": browser_for(None),
        "author": browser_for(author),
        "reader": browser_for(reader),
        "moderator": browser_for(moderator),
    }


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_anonymous_is_sent_to_sign_in_and_nothing_changes(ctx, page):
    before = db_state()
    response = page.call(ctx["anonymous"], ctx)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")
    assert db_state() == before


@pytest.mark.parametrize("page", [p for p in PAGES if p.author_only], ids=[p.name for p in PAGES if p.author_only])
def test_another_user_gets_404_and_nothing_changes(ctx, page):
    before = db_state()
    response = page.call(ctx["reader"], ctx)
    assert response.status_code == 404
    assert db_state() == before


MODERATOR_ONLY = [p for p in PAGES if p.moderator_only]


@pytest.mark.parametrize("page", MODERATOR_ONLY, ids=[p.name for p in MODERATOR_ONLY])
@pytest.mark.parametrize("who", ["author", "reader"])
def test_moderation_is_404_for_everyone_else_and_nothing_changes(ctx, page, who):
    before = db_state()
    assert page.call(ctx[who], ctx).status_code == 404
    assert db_state() == before


@pytest.mark.parametrize(
    "page", [p for p in PAGES if not p.moderator_only], ids=[p.name for p in PAGES if not p.moderator_only]
)
def test_author_is_served(ctx, page):
    assert page.call(ctx["author"], ctx).status_code == page.ok_status


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_moderator_is_served(ctx, page):
    assert page.call(ctx["moderator"], ctx).status_code == page.ok_status


def test_every_forum_url_is_in_the_suite():
    from types import SimpleNamespace

    from django.urls import get_resolver, resolve

    forum = next(p for p in get_resolver().url_patterns if getattr(p, "app_name", None) == "discussion")
    routes = {"discuss/" + str(p.pattern) for p in forum.url_patterns}
    fake = {name: SimpleNamespace(pk=1, name="n1") for name in ("post", "reply", "lonely", "report", "node")}
    assert routes == {resolve(page.url(fake).split("?")[0]).route for page in PAGES}


def test_hidden_and_deleted_posts_are_404_for_others_but_shown_to_moderators(ctx):
    post = ctx["post"]
    Post.objects.filter(pk=post.pk).update(hidden=True)
    assert ctx["reader"].get(f"/discuss/{post.pk}/").status_code == 404
    assert ctx["author"].get(f"/discuss/{post.pk}/").status_code == 200
    assert b"nobody answered" in ctx["reader"].get("/discuss/").content
    assert b"NCCL timeout" not in ctx["reader"].get("/discuss/").content
    lonely = ctx["lonely"]
    ctx["author"].post(f"/discuss/{lonely.pk}/delete/")
    assert ctx["author"].get(f"/discuss/{lonely.pk}/").status_code == 404
    moderator_view = ctx["moderator"].get(f"/discuss/{lonely.pk}/")
    assert moderator_view.status_code == 200 and b"Deleted" in moderator_view.content


def test_forged_identity_and_moderation_fields_are_ignored(ctx, author, reader):
    forged = {
        "title": "Forged?",
        "body": "body",
        "category": "jobs",
        "tags": "x",
        "author": author.pk,
        "author_id": author.pk,
        "username": "alice",
        "pinned": "1",
        "locked": "1",
        "hidden": "1",
        "reply_count": "99",
        "like_count": "99",
    }
    response = ctx["reader"].post("/discuss/new/", forged)
    assert response.status_code == 302
    post = Post.objects.get(title="Forged?")
    assert (post.author, post.pinned, post.locked, post.hidden, post.reply_count, post.like_count) == (
        reader,
        False,
        False,
        False,
        0,
        0,
    )
    ctx["reader"].post(
        f"/discuss/{post.pk}/reply/", {"body": "r", "author": author.pk, "floor": "7", "username": "alice"}
    )
    reply = Reply.objects.get(post=post)
    assert (reply.author, reply.floor) == (reader, 1)
    ctx["reader"].post(f"/discuss/replies/{reply.pk}/edit/", {"body": "r2", "edited_by": author.pk})
    assert Revision.objects.get(reply=reply).edited_by == reader


def test_reply_with_quote_shows_the_quote_and_the_floor(ctx, reader):
    post, quoted = ctx["post"], ctx["reply"]
    page = ctx["reader"].get(f"/discuss/{post.pk}/?quote={quoted.pk}")
    assert f'name="quote" value="{quoted.pk}"'.encode() in page.content
    response = ctx["reader"].post(f"/discuss/{post.pk}/reply/", {"body": "same here", "quote": quoted.pk})
    assert response["Location"] == f"/discuss/{post.pk}/#floor-2"
    body = ctx["reader"].get(f"/discuss/{post.pk}/").content.decode()
    assert "Quoting Alice L., #1" in body
    assert 'id="floor-2"' in body
    ctx["author"].post(f"/discuss/replies/{quoted.pk}/delete/")
    body = ctx["reader"].get(f"/discuss/{post.pk}/").content.decode()
    assert "The quoted reply was deleted." in body and "my own reply" not in body


def test_bad_reply_shows_the_error_and_stores_nothing(ctx):
    before = db_state()
    response = ctx["reader"].post(f"/discuss/{ctx['post'].pk}/reply/", {"body": "   "})
    assert response.status_code == 400
    assert db_state() == before


def test_nicknames_for_users_and_accounts_for_moderators(ctx):
    url = f"/discuss/{ctx['post'].pk}/"
    reader_view = ctx["reader"].get(url).content.decode()
    assert "Alice L." in reader_view and "(alice)" not in reader_view
    assert 'Alice L. <span class="muted">(alice)</span>' in ctx["moderator"].get(url).content.decode()


def test_list_filters_and_orders(ctx, make_post, reader):
    make_post(actor=reader, title="GPU fell off the bus", tags="hardware", category="nodes")
    client = ctx["reader"]
    assert b"GPU fell off" in client.get("/discuss/?tag=hardware").content
    assert b"NCCL timeout" not in client.get("/discuss/?tag=hardware").content
    assert b"NCCL timeout" not in client.get("/discuss/?category=nodes").content
    unanswered = client.get("/discuss/?order=unanswered").content
    assert b"nobody answered" in unanswered and b"NCCL timeout" not in unanswered
    mine = client.get("/discuss/?order=mine").content
    assert b"GPU fell off" in mine and b"nobody answered" not in mine
    assert b"NCCL timeout" not in client.get("/discuss/?author=bob").content


def test_list_query_count_does_not_grow_with_posts(ctx, make_post, django_assert_max_num_queries):
    for i in range(15):
        make_post(title=f"p{i}", tags=f"t{i} common")
    with django_assert_max_num_queries(12):
        assert ctx["reader"].get("/discuss/").status_code == 200


def test_xss_corpus_is_inert_on_every_page(ctx, author, reader, moderator, make_post, make_reply):
    author.nickname = "<img src=x onerror=alert('nick')>"
    author.save()
    payload = "\n\n".join(CORPUS)
    post = make_post(title="<script>alert('t')</script>\"><img src=x onerror=alert(1)>", body=payload, tags="xss")
    reply = make_reply(post, actor=author, body=payload)
    make_reply(post, body="quoting", quote_id=reply.pk)
    services.report_create(actor=reader, reply=reply, reason=payload[:400])
    services.report_create(actor=moderator, post=post, reason=payload[:400])

    services.post_update(
        actor=author, post=post, title=post.title + "!", body=payload + "!", category="jobs", tags="xss"
    )
    services.reply_update(actor=author, reply=reply, body=payload + "?")
    urls = [
        "/discuss/",
        "/discuss/?tag=xss",
        f"/discuss/?author={'<script>'}",
        f"/discuss/{post.pk}/",
        f"/discuss/{post.pk}/?quote={reply.pk}",
        f"/discuss/{post.pk}/edit/",
        f"/discuss/{post.pk}/history/",
        f"/discuss/replies/{reply.pk}/edit/",
        f"/discuss/replies/{reply.pk}/history/",
        "/discuss/moderation/",
        "/discuss/?order=hot",
        "/discuss/search/?q=alert",
        "/discuss/search/?q=script&tag=%3Cscript%3E",
        "/discuss/nodes/gpu-a01/",
    ]
    for who in ("author", "reader", "moderator"):
        for url in urls:
            response = ctx[who].get(url)
            if response.status_code == 404:
                continue
            assert response.status_code == 200, url
            assert_inert(response.content.decode())


def test_pages_in_chinese_have_no_english_left(browser_for, reader, author, moderator, make_post, make_reply):
    from tests.web.test_i18n import english_left

    NodeFactory(name="n1", gpu_model="A100")
    post = make_post(title="训练卡住", body="节点 **n1** 上的任务 #3 卡住了", tags="训练")
    reply = make_reply(post, body="试试重启")
    make_reply(post, actor=author, body="好的", quote_id=reply.pk)
    for user in (reader, moderator):
        client = browser_for(user, language="zh-hans")
        urls = ("/discuss/", f"/discuss/{post.pk}/", "/discuss/new/", f"/discuss/{post.pk}/history/")
        urls += ("/discuss/nodes/n1/",)
        for url in (*urls, "/discuss/search/?q=卡住", "/discuss/moderation/" if user == moderator else "/discuss/"):
            response = client.get(url)
            assert response.status_code == 200
            assert english_left(response.content.decode()) == [], url
        assert "发帖" in client.get("/discuss/").content.decode()


def test_nav_links_to_the_forum(ctx):
    body = ctx["reader"].get("/discuss/").content.decode()
    assert 'href="/discuss/" aria-current="page"' in body


def test_like_over_htmx_answers_with_the_button_and_a_plain_post_redirects(ctx, reader):
    post = ctx["post"]
    response = ctx["reader"].post(f"/discuss/{post.pk}/like/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and 'aria-pressed="true"' in body and "data-like-count>1<" in body
    response = ctx["reader"].post(f"/discuss/{post.pk}/like/")
    assert response["Location"] == f"/discuss/{post.pk}/#post"
    post.refresh_from_db()
    assert post.like_count == 0


def test_opening_a_post_counts_a_view_once(ctx):
    post = ctx["post"]
    ctx["reader"].get(f"/discuss/{post.pk}/")
    ctx["reader"].get(f"/discuss/{post.pk}/")
    post.refresh_from_db()
    assert post.view_count == 1


def test_moderation_queue_lists_open_reports_and_closes_them(ctx):
    body = ctx["moderator"].get("/discuss/moderation/").content.decode()
    assert "a test report" in body
    response = ctx["moderator"].post(f"/discuss/moderation/{ctx['report'].pk}/", {"action": "hide"}, follow=True)
    assert "Report closed." in response.content.decode()
    assert Post.objects.get(pk=ctx["post"].pk).hidden
    assert "a test report" not in ctx["moderator"].get("/discuss/moderation/").content.decode()
    assert "a test report" in ctx["moderator"].get("/discuss/moderation/?status=resolved").content.decode()


def test_reporting_twice_says_so(ctx):
    url = f"/discuss/{ctx['post'].pk}/report/"
    ctx["reader"].post(url, {"reason": "spam"})
    response = ctx["reader"].post(url, {"reason": "spam"}, follow=True)
    assert "You already reported this" in response.content.decode()


def test_discuss_link_on_a_job_opens_a_post_linked_to_it(cluster, submit, author, browser_for, workspace):
    chain = submit(author, name="linked-job")
    client = browser_for(author)
    job_page = client.get(f"/experiments/{chain.pk}/").content.decode()
    assert f'href="/discuss/new/?chain={chain.pk}"' in job_page
    form = client.get(f"/discuss/new/?chain={chain.pk}").content.decode()
    assert f'name="chain" value="{chain.pk}"' in form and f"linked to job #{chain.pk}" in form
    response = client.post(
        "/discuss/new/",
        {"title": "Why so slow?", "body": f"#{chain.pk} waits", "category": "jobs", "tags": "q", "chain": chain.pk},
    )
    post = Post.objects.get(title="Why so slow?")
    assert response["Location"] == f"/discuss/{post.pk}/" and post.chain_id == chain.pk
    assert f"about job #{chain.pk}" in client.get(f"/discuss/{post.pk}/").content.decode()


def test_linking_someone_elses_job_is_refused_and_nothing_is_stored(cluster, submit, author, reader, browser_for):
    chain = submit(author, name="private-job")
    before = db_state()
    response = browser_for(reader).post(
        "/discuss/new/", {"title": "t", "body": "b", "category": "jobs", "tags": "q", "chain": chain.pk}
    )
    assert response.status_code == 200 and "No such job." in response.content.decode()
    assert db_state() == before


def test_a_node_named_in_a_post_links_to_its_page_with_the_posts_about_it(ctx, make_post, moderator):
    linked = make_post(title="Flaky node", body="gpu-a01 drops off the network", tags="nodes")
    secret = make_post(title="Hidden gpu-a01 note", body="gpu-a01", tags="nodes")
    services.post_moderate(actor=moderator, post=secret, action="hide")
    body = ctx["reader"].get(f"/discuss/{linked.pk}/").content.decode()
    assert '<a href="/discuss/nodes/gpu-a01/" class="node-ref" rel="nofollow noopener noreferrer">gpu-a01</a>' in body
    page = ctx["reader"].get("/discuss/nodes/gpu-a01/").content.decode()
    assert '<dd class="num">8 × A100</dd>' in page
    assert 'data-node-state="ready">Ready</span>' in page
    assert f'href="/discuss/{linked.pk}/"' in page and f'href="/discuss/{secret.pk}/"' not in page
    assert f'href="/discuss/{secret.pk}/"' in ctx["moderator"].get("/discuss/nodes/gpu-a01/").content.decode()


def test_an_unknown_node_is_404_and_bad_names_never_reach_the_database(ctx):
    before = db_state()
    assert ctx["reader"].get("/discuss/nodes/gpu-z99/").status_code == 404
    assert ctx["reader"].get("/discuss/nodes/%3Cscript%3E/").status_code == 404
    assert db_state() == before
