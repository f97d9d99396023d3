"""Enumerations of development containers."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ContainerStatus(models.TextChoices):
    """What the platform knows of a container. ``desired`` says what the user wants."""

    STOPPED = "stopped", _("Stopped")
    QUEUED = "queued", _("Waiting for a node")  # wants to run; the scheduler has not placed it yet
    STARTING = "starting", _("Starting")  # placed on a node; services are being started
    RUNNING = "running", _("Running")
    STOPPING = "stopping", _("Stopping")
    FAILED = "failed", _("Failed")


#: The states in which a container holds (or is about to hold) resources on a node.
ON_NODE = frozenset({ContainerStatus.STARTING, ContainerStatus.RUNNING, ContainerStatus.STOPPING})


class DesiredState(models.TextChoices):
    RUNNING = "running", _("Running")
    STOPPED = "stopped", _("Stopped")
    DELETED = "deleted", _("Deleted")


class GroupKind(models.TextChoices):
    SHARED = "shared", _("Shared: several containers per node")
    DEDICATED = "dedicated", _("Dedicated: a whole node per container")


class Protocol(models.TextChoices):
    HTTP = "http", _("HTTP")
    TCP = "tcp", _("TCP")


class StopReason(models.TextChoices):
    NONE = "", _("None")
    USER = "user", _("Stopped by its owner")
    ADMIN = "admin", _("Stopped by an admin")
    IDLE = "idle", _("Stopped as idle")
    PREEMPTED = "preempted", _("Stopped for a training job")
    FAILED = "failed", _("A service failed to start")
    NODE_LOST = "node_lost", _("Its node became unavailable")
    RESTART = "restart", _("Restarting")


#: Built-in service names; custom services may not take them.
JUPYTER = "jupyter"
SSH = "ssh"
BUILTIN_SERVICES = (JUPYTER, SSH)
JUPYTER_PORT = 8888
SSH_PORT = 22
