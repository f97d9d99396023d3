"""Development containers: a user's named, long-lived environment on a node (docs/containers.md).

A ``Container`` is what the user asked for (node group, resources, image, services, start-up
script) plus what the platform did with it (status, node, run number). Edits change the row at
once and take effect at the next start: a running container keeps the spec it was started with
(``started_spec``). Placement is the scheduler's (``apps.containers.placement``, called from the
scheduling pass); starting and stopping services is the launcher's. Writes go through
``apps.containers.services``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.cluster.models import Environment, Node, NodeGroup
from apps.containers.choices import ContainerStatus, DesiredState, GroupKind, Protocol, StopReason

container_name_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$",
    _("Use 1–32 lower-case letters, digits and '-', starting and ending with a letter or digit."),
)


class ContainerGroupPolicy(models.Model):
    """How a node group hosts containers: shared (bin-packed) or dedicated (a whole node each),
    whether training jobs may take its nodes back, and its idle-reclaim settings.

    A group without a row is shared, never preempted, and reclaims idle containers with the
    defaults of ``ROTA_CONTAINERS``."""

    node_group = models.OneToOneField(NodeGroup, on_delete=models.CASCADE, related_name="container_policy")
    kind = models.CharField(_("kind"), max_length=16, choices=GroupKind.choices, default=GroupKind.SHARED)
    preemptible = models.BooleanField(
        _("training jobs may stop containers"),
        default=False,
        help_text=_(
            "When set, the training scheduler may use nodes holding containers; those are stopped and requeued."
        ),
    )
    idle_reclaim = models.BooleanField(_("stop idle containers"), default=True)
    idle_seconds = models.PositiveIntegerField(_("idle time before the warning (s)"), default=4 * 3600)
    grace_seconds = models.PositiveIntegerField(_("grace after the warning (s)"), default=3600)
    gpu_util_threshold = models.PositiveIntegerField(
        _("GPU utilisation counted as idle (%)"), default=5, validators=[MaxValueValidator(100)]
    )

    def __str__(self) -> str:
        return f"{self.node_group} ({self.kind})"


class Container(models.Model):
    """One development container. ``(owner, name)`` is unique among containers not deleted."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="containers")
    name = models.CharField(_("name"), max_length=32, validators=[container_name_validator])
    node_group = models.ForeignKey(NodeGroup, on_delete=models.PROTECT, related_name="containers")
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="containers"
    )
    cpu = models.PositiveIntegerField(_("CPU cores"), default=1, validators=[MinValueValidator(1)])
    memory_gib = models.PositiveIntegerField(_("memory (GiB)"), default=4, validators=[MinValueValidator(1)])
    gpus = models.PositiveIntegerField(_("GPUs"), default=0)
    ssh = models.BooleanField(_("SSH service"), default=False)
    startup_script = models.TextField(_("start-up script"), blank=True, max_length=20000)

    desired = models.CharField(max_length=16, choices=DesiredState.choices, default=DesiredState.STOPPED)
    status = models.CharField(
        _("status"), max_length=16, choices=ContainerStatus.choices, default=ContainerStatus.STOPPED
    )
    status_message = models.CharField(max_length=500, blank=True)
    stop_reason = models.CharField(max_length=16, choices=StopReason.choices, default=StopReason.NONE, blank=True)
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.SET_NULL, related_name="containers")
    ssh_node_port = models.PositiveIntegerField(null=True, blank=True, unique=True)
    run = models.PositiveIntegerField(default=0)  # incremented at every placement: the run's identity
    started_spec = models.JSONField(default=dict, blank=True)  # the spec of the current run
    restart_services = models.JSONField(default=list, blank=True)  # service names to restart (launcher)
    # What the launcher saw of the current run: service name → {"phase", "message"}, and where its
    # HTTP services answer (service name → "host:port"; the portal's proxy reads it).
    service_states = models.JSONField(default=dict, blank=True)
    endpoints = models.JSONField(default=dict, blank=True)

    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    # GPU groups: the last GPU utilisation the launcher read (%, None = unknown or not read yet) and
    # when the GPUs were last seen busy (at or over the group's threshold) or not measurable.
    gpu_utilisation = models.FloatField(null=True, blank=True)
    gpu_busy_at = models.DateTimeField(null=True, blank=True)
    idle_warned_at = models.DateTimeField(null=True, blank=True)
    kept_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["owner_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"], condition=Q(deleted_at__isnull=True), name="container_unique_live_name"
            )
        ]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["node", "status"])]

    def __str__(self) -> str:
        return f"{self.owner_id}/{self.name}"

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib) * 2**30

    @property
    def has_pending_edits(self) -> bool:
        """Edited since the current run started: the edits apply at the next (re)start."""
        return bool(self.edited_at and self.started_at and self.edited_at > self.started_at)


class ContainerService(models.Model):
    """A custom service of a container (the built-in JupyterLab and SSH are not rows).

    ``node_port`` is the NodePort a TCP service is exposed on (Kubernetes backend), allocated from
    ``ROTA_CONTAINERS['NODE_PORT_RANGE']`` within the owner's port quota; unique cluster-wide."""

    container = models.ForeignKey(Container, on_delete=models.CASCADE, related_name="services")
    name = models.CharField(_("name"), max_length=32, validators=[container_name_validator])
    port = models.PositiveIntegerField(_("port"), validators=[MinValueValidator(1), MaxValueValidator(65535)])
    protocol = models.CharField(_("protocol"), max_length=8, choices=Protocol.choices, default=Protocol.HTTP)
    command = models.CharField(_("start command"), max_length=2000)
    node_port = models.PositiveIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["container_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["container", "name"], name="container_service_unique_name"),
            models.UniqueConstraint(fields=["container", "port"], name="container_service_unique_port"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.protocol}:{self.port})"
