"""Enumerations of the forum: categories, list orders, reports and moderation actions."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Category(models.TextChoices):
    QUESTION = "question", _("Questions")
    JOBS = "jobs", _("Jobs and scheduling")
    NODES = "nodes", _("Nodes and hardware")
    ENVIRONMENTS = "environments", _("Environments and images")
    ANNOUNCEMENT = "announcement", _("Announcements")
    OTHER = "other", _("Other")


class PostOrder(models.TextChoices):
    LATEST = "latest", _("Latest")
    HOT = "hot", _("Hot")
    UNANSWERED = "unanswered", _("Unanswered")
    MINE = "mine", _("Mine")


class ReportStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Acted on")
    DISMISSED = "dismissed", _("Dismissed")


class ReportAction(models.TextChoices):
    """What a moderator does with a report."""

    DISMISS = "dismiss", _("Dismiss: nothing wrong")
    HIDE = "hide", _("Hide the post")
    DELETE = "delete", _("Delete what was reported")


class Moderation(models.TextChoices):
    """A moderator's switch on a post."""

    PIN = "pin", _("Pin")
    UNPIN = "unpin", _("Unpin")
    LOCK = "lock", _("Lock")
    UNLOCK = "unlock", _("Unlock")
    HIDE = "hide", _("Hide")
    UNHIDE = "unhide", _("Show again")
