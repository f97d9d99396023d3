"""Cluster inventory: node groups, nodes, runtime environments and mount rules."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.cluster.choices import MountAction, MountKind, NodeState
from apps.cluster.pod_settings import validate_field as validate_pod_settings

name_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9_.\-]{0,62}[a-z0-9])?$",
    _("Use lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit."),
)


class NodeGroup(models.Model):
    """A scheduling group: every node is in exactly one (e.g. ``training``, ``jupyter_cpu``)."""

    name = models.CharField(_("name"), max_length=64, unique=True, validators=[name_validator])
    description = models.CharField(_("description"), max_length=255, blank=True)
    pod_settings = models.JSONField(
        _("pod settings (Kubernetes)"),
        default=dict,
        blank=True,
        validators=[validate_pod_settings],
        help_text=_(
            "Tolerations, runtime and priority class, annotations, extra resources, host network, "
            "memlock and more for the pods of jobs on this group (see docs/kubernetes.md)."
        ),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Node(models.Model):
    """A machine. Only ``ready`` nodes are scheduled; ``disabled`` is an admin's decision with a
    reason, ``not_ready`` and ``cordoned`` are what the backend observes (a cordoned node takes no
    new work, the jobs on it go on; a not-ready node's jobs are requeued).

    ``allocatable_*`` is what the backend reports pods may request on the node in all (Kubernetes'
    ``status.allocatable``: the nominal size less what the kubelet and system reserve); job pods
    request that less ``ROTA_K8S_HEADROOM_*``, so they fit next to the node's daemons."""

    name = models.CharField(_("name"), max_length=253, unique=True, validators=[name_validator])
    group = models.ForeignKey(NodeGroup, on_delete=models.PROTECT, related_name="nodes")
    gpu_count = models.PositiveIntegerField(_("GPUs"), default=0)
    gpu_model = models.CharField(_("GPU model"), max_length=64, blank=True)
    cpu = models.PositiveIntegerField(_("CPU cores"), default=0)
    memory_bytes = models.PositiveBigIntegerField(_("memory (bytes)"), default=0)
    allocatable_cpu_millis = models.PositiveIntegerField(_("allocatable CPU (millicores)"), null=True, blank=True)
    allocatable_memory_bytes = models.PositiveBigIntegerField(_("allocatable memory (bytes)"), null=True, blank=True)
    room = models.CharField(_("room"), max_length=64, blank=True)
    state = models.CharField(_("state"), max_length=16, choices=NodeState.choices, default=NodeState.READY)
    state_reason = models.CharField(_("reason"), max_length=255, blank=True)
    drain_deadline = models.DateTimeField(
        _("drain deadline"),
        null=True,
        blank=True,
        help_text=_("While draining: jobs still running on the node then are suspended (and requeued)."),
    )
    labels = models.JSONField(_("labels"), default=dict, blank=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["group__name", "name"]
        indexes = [models.Index(fields=["group", "state"])]

    def __str__(self) -> str:
        return self.name

    @property
    def is_schedulable(self) -> bool:
        return self.state == NodeState.READY


class Environment(models.Model):
    """A named runtime image users may pick; who may use it is a quota (``environment`` rows)."""

    name = models.CharField(_("name"), max_length=64, unique=True, validators=[name_validator])
    image = models.CharField(_("image"), max_length=255)
    description = models.CharField(_("description"), max_length=255, blank=True)
    env_vars = models.JSONField(_("default environment variables"), default=dict, blank=True)
    interpreter = models.CharField(_("python interpreter"), max_length=255, default="python3")
    pod_settings = models.JSONField(
        _("pod settings (Kubernetes)"),
        default=dict,
        blank=True,
        validators=[validate_pod_settings],
        help_text=_("Pod settings for jobs using this environment; they win over the node group's."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MountRule(models.Model):
    """A storage rule: ``source`` (host path, PVC or configmap) mounted at ``container_path``.

    ``source`` and ``container_path`` may contain placeholders such as ``{user.username}`` and
    ``{task.chain_id}``, expanded by a whitelist (``apps.cluster.templates``), never ``eval``.
    ``conditions`` are structured equality tests, e.g. ``{"role": "internal", "task_type":
    "training"}``. A ``remove`` rule that matches takes a path away from a user or group.
    """

    name = models.CharField(_("name"), max_length=64, unique=True, validators=[name_validator])
    kind = models.CharField(_("kind"), max_length=16, choices=MountKind.choices, default=MountKind.HOST_PATH)
    source = models.CharField(_("source"), max_length=1024)
    container_path = models.CharField(_("container path"), max_length=1024)
    read_only = models.BooleanField(_("read only"), default=False)
    action = models.CharField(_("action"), max_length=8, choices=MountAction.choices, default=MountAction.ADD)
    active = models.BooleanField(_("active"), default=True)
    owner_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="mount_rules")
    owner_groups = models.ManyToManyField(Group, blank=True, related_name="mount_rules")
    conditions = models.JSONField(_("conditions"), default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.source} → {self.container_path}"
