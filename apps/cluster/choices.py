"""Enumerations of the cluster inventory."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class NodeState(models.TextChoices):
    READY = "ready", _("Ready")
    NOT_READY = "not_ready", _("Not ready")
    CORDONED = "cordoned", _("Cordoned")  # ready, takes no new work; jobs on it go on
    DISABLED = "disabled", _("Disabled")
    DRAINING = "draining", _("Draining")  # an admin's: no new work; its jobs are suspended at the deadline


#: States an admin sets; what the backend observes never overrides them.
ADMIN_STATES = frozenset({NodeState.DISABLED, NodeState.DRAINING})


class MountKind(models.TextChoices):
    HOST_PATH = "host_path", _("Host path")
    PVC = "pvc", _("Persistent volume claim")
    CONFIGMAP = "configmap", _("Config map")


class MountAction(models.TextChoices):
    ADD = "add", _("Add")
    REMOVE = "remove", _("Remove")
