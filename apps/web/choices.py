"""Enumerations of the portal: notice severities and audiences, themes."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class NoticeSeverity(models.TextChoices):
    INFO = "info", _("Information")
    SUCCESS = "success", _("Good news")
    WARNING = "warning", _("Warning")
    DANGER = "danger", _("Urgent")


# Most severe first: the dashboard lists urgent notices at the top.
SEVERITY_ORDER = [NoticeSeverity.DANGER, NoticeSeverity.WARNING, NoticeSeverity.INFO, NoticeSeverity.SUCCESS]


class NoticeAudience(models.TextChoices):
    ALL = "all", _("Everyone")
    GROUP = "group", _("Members of a group")
    USER = "user", _("One user")


class Theme(models.TextChoices):
    SYSTEM = "system", _("Follow the system")
    LIGHT = "light", _("Light")
    DARK = "dark", _("Dark")
