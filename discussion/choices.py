"""Enumerations of the forum: categories, list orders."""

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
    UNANSWERED = "unanswered", _("Unanswered")
    MINE = "mine", _("Mine")
