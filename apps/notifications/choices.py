"""Enumerations of notifications: what happened."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class NotificationKind(models.TextChoices):
    REPLY = "reply", _("Replies to my posts")
    QUOTE = "quote", _("Quotes of my replies")
    LIKE = "like", _("Likes")
    MENTION = "mention", _("Mentions of me")
    MODERATION = "moderation", _("Moderators acting on my posts")
    NOTICE = "notice", _("Notices from the admins")
    CONTAINER = "container", _("My idle containers")
