"""Who may do what in the forum. Plain predicates, used by services (which enforce them) and by
templates (which only decide which buttons to show).

- Every active user reads, posts, replies, likes and reports.
- Moderators (``forum_admin`` or ``root``, or a superuser) may do anything, see hidden and deleted
  content, and see the account behind a nickname.
- Authors edit their own posts and replies while the post is not locked, delete their own replies,
  and delete their own post only while it has no replies.
"""

from __future__ import annotations

from apps.accounts.choices import AdminGroup
from apps.accounts.models import User
from discussion.models import Post, Reply


def is_moderator(user: User) -> bool:
    return user.is_authenticated and user.in_admin_group(AdminGroup.FORUM_ADMIN)


def can_see_post(user: User, post: Post) -> bool:
    if is_moderator(user):
        return True
    if post.is_deleted:
        return False
    return not post.hidden or post.author_id == user.pk


def can_edit_post(user: User, post: Post) -> bool:
    if post.is_deleted:
        return False
    return is_moderator(user) or (post.author_id == user.pk and not post.locked)


def can_delete_post(user: User, post: Post) -> bool:
    if post.is_deleted:
        return False
    return is_moderator(user) or (post.author_id == user.pk and post.reply_count == 0)


def can_reply(user: User, post: Post) -> bool:
    return not post.is_deleted and (is_moderator(user) or not post.locked)


def can_edit_reply(user: User, reply: Reply) -> bool:
    if reply.is_deleted or reply.post.is_deleted:
        return False
    return is_moderator(user) or (reply.author_id == user.pk and not reply.post.locked)


def can_delete_reply(user: User, reply: Reply) -> bool:
    if reply.is_deleted or reply.post.is_deleted:
        return False
    return is_moderator(user) or reply.author_id == user.pk
