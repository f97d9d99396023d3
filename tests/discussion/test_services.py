"""Forum services: floors, quotes, edit history, soft delete and who may do what."""

from __future__ import annotations

import pytest

from apps.core.errors import ApplicationError, NotFound, PermissionDenied
from discussion import services
from discussion.models import Post, Reply, Revision, Tag
from tests.permissions import db_state


def test_post_create_stores_rendered_body_and_clean_tags(make_post, author):
    post = make_post(title="  Out   of memory ", body="see #4", tags="CUDA, oom  cuda")
    assert post.title == "Out of memory"
    assert post.author == author
    assert (
        post.body_html
        == '<p>see <a href="/experiments/4/" class="job-ref" rel="nofollow noopener noreferrer">#4</a></p>\n'
    )
    assert sorted(t.name for t in post.tags.all()) == ["cuda", "oom"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": " "}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"body": "  \n "}, "body"),
        ({"tags": ""}, "tags"),
        ({"tags": "a b c d e f"}, "tags"),
        ({"tags": "<script>"}, "tags"),
        ({"category": "nope"}, "category"),
    ],
)
def test_bad_post_input_is_refused_with_a_field_message_and_nothing_is_stored(make_post, fields, field):
    before = db_state()
    with pytest.raises(ApplicationError) as raised:
        make_post(**fields)
    assert list(raised.value.fields) == [field]
    assert db_state() == before


def test_replies_get_consecutive_floors_that_are_never_reused(make_post, make_reply):
    post = make_post()
    first, second = make_reply(post), make_reply(post)
    services.reply_delete(actor=second.author, reply=second)
    third = make_reply(post)
    assert [first.floor, second.floor, third.floor] == [1, 2, 3]
    post.refresh_from_db()
    assert (post.reply_count, post.next_floor) == (2, 4)


def test_quote_must_be_a_live_reply_of_the_same_post(make_post, make_reply):
    post, other = make_post(), make_post(title="another")
    quoted = make_reply(post)
    foreign = make_reply(other)
    reply = make_reply(post, body="agreed", quote_id=quoted.pk)
    assert reply.quote == quoted
    before = db_state()
    with pytest.raises(ApplicationError) as raised:
        make_reply(post, quote_id=foreign.pk)
    assert list(raised.value.fields) == ["quote"]
    assert db_state() == before


def test_edit_keeps_the_previous_text_as_a_revision(make_post, author):
    post = make_post(body="v1")
    services.post_update(actor=author, post=post, title="New title", body="v2 @nobody", category="jobs", tags="x")
    post.refresh_from_db()
    assert (post.title, post.body, post.edited_at is not None) == ("New title", "v2 @nobody", True)
    assert list(Revision.objects.values_list("title", "body", "edited_by__username")) == [
        ("NCCL timeout on 4 nodes", "v1", "alice")
    ]
    assert [t.name for t in post.tags.all()] == ["x"]


def test_editing_only_tags_makes_no_revision(make_post, author):
    post = make_post()
    services.post_update(actor=author, post=post, title=post.title, body=post.body, category="nodes", tags="a")
    assert Revision.objects.count() == 0


def test_another_user_cannot_edit_or_delete_and_nothing_changes(make_post, make_reply, reader, author):
    post = make_post()
    reply = make_reply(post, actor=author)
    before = db_state()
    with pytest.raises(PermissionDenied):
        services.post_update(actor=reader, post=post, title="x", body="y", category="jobs", tags="z")
    with pytest.raises(PermissionDenied):
        services.post_delete(actor=reader, post=post)
    with pytest.raises(PermissionDenied):
        services.reply_update(actor=reader, reply=reply, body="mine now")
    with pytest.raises(PermissionDenied):
        services.reply_delete(actor=reader, reply=reply)
    assert db_state() == before


def test_author_deletes_own_post_only_while_it_has_no_replies(make_post, make_reply, author):
    lonely = make_post()
    services.post_delete(actor=author, post=lonely)
    lonely.refresh_from_db()
    assert lonely.deleted_by == author and lonely.deleted_at is not None

    answered = make_post(title="answered")
    make_reply(answered)
    before = db_state()
    with pytest.raises(PermissionDenied, match="ask a moderator"):
        services.post_delete(actor=author, post=answered)
    assert db_state() == before


def test_moderator_edits_and_deletes_anything(make_post, make_reply, moderator):
    post = make_post()
    reply = make_reply(post)
    services.reply_update(actor=moderator, reply=reply, body="edited by a moderator")
    services.reply_delete(actor=moderator, reply=reply)
    services.post_delete(actor=moderator, post=post)
    post.refresh_from_db()
    reply.refresh_from_db()
    assert post.deleted_by == moderator and reply.deleted_by == moderator
    assert Revision.objects.get().body == "Try NCCL_DEBUG=INFO."


def test_locked_post_takes_replies_from_moderators_only(make_post, make_reply, reader, moderator):
    post = make_post()
    Post.objects.filter(pk=post.pk).update(locked=True)
    before = db_state()
    with pytest.raises(PermissionDenied, match="locked"):
        make_reply(post, actor=reader)
    assert db_state() == before
    assert make_reply(post, actor=moderator).floor == 1


def test_hidden_or_deleted_post_is_not_found_for_a_reply(make_post, make_reply, reader):
    post = make_post()
    Post.objects.filter(pk=post.pk).update(hidden=True)
    with pytest.raises(NotFound):
        make_reply(post, actor=reader)
    assert Reply.objects.count() == 0


def test_linking_a_job_the_author_cannot_see_is_refused(make_post):
    before = db_state()
    with pytest.raises(NotFound):
        make_post(chain_id=424242)
    assert db_state() == before
    assert Tag.objects.count() == 0
