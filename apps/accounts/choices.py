"""Enumerations of the accounts app."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    INTERNAL = "internal", _("Internal")
    EXTERNAL = "external", _("External")


class TokenScope(models.TextChoices):
    ALL = "all", _("Everything")
    EXCEPT_JUPYTER = "except_jupyter", _("Everything except dev containers")
    READ_ONLY = "read_only", _("Read only")
    JOB = "job", _("One job attempt (issued by the platform)")


class AdminGroup(models.TextChoices):
    """Django groups that grant administrative powers (HAI's permission groups)."""

    ROOT = "root", _("Root: every admin power")
    CLUSTER_MANAGER = "cluster_manager", _("Cluster manager: nodes and node groups")
    OPS = "ops", _("Ops: nodes, jobs and containers")
    QUOTA_EDITOR = "quota_editor", _("Quota editor")
    FORUM_ADMIN = "forum_admin", _("Forum admin")
    TASK_ADMIN = "task_admin", _("Task admin: act on every job")


# Groups every user implicitly belongs to for quota resolution (HAI's user_all_groups).
PUBLIC_GROUP = "public"
